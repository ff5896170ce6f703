"""Patient references: one spelling per reference, so look-alikes cannot make a second case.

A reference is normalised (Unicode NFKC: full-width digits, ligatures and the like become
their plain form), invisible format characters (Unicode category Cf: zero-width spaces and
joiners, direction marks, soft hyphens) are removed, control characters are refused by the
form, and surrounding white space is trimmed. Uniqueness within a clinic is then
case-insensitive, in the form and in the database (``Lower(patient_ref)`` constraint).
"""

import unicodedata


def normalize_patient_ref(value: str) -> str:
    value = unicodedata.normalize("NFKC", value or "")
    value = "".join(ch for ch in value if unicodedata.category(ch) != "Cf")
    return value.strip()


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in value)
