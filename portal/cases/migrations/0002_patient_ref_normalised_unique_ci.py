"""Patient references: normalise existing rows (NFKC, format characters removed, trimmed,
as portal.cases.refs does for new ones), then make them unique per clinic regardless of
case. If two existing cases of one clinic become the same reference, the migration stops
and names them: merging or renaming patients is a clinical decision, never an automatic one.
"""

import unicodedata
from collections import defaultdict

import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


def _normalise(value):
    # A copy of portal.cases.refs.normalize_patient_ref as it is today (migrations must
    # not change when the application code does).
    value = unicodedata.normalize("NFKC", value or "")
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf").strip()


def normalise_refs(apps, schema_editor):
    Case = apps.get_model("cases", "Case")
    groups = defaultdict(list)
    for case in Case.objects.only("pk", "clinic_id", "patient_ref").iterator():
        groups[(case.clinic_id, _normalise(case.patient_ref).lower())].append(case)
    clashes = [cases for cases in groups.values() if len(cases) > 1]
    if clashes:
        listed = "; ".join(
            ", ".join(f"{case.pk} ({case.patient_ref!r})" for case in cases) for cases in clashes
        )
        raise RuntimeError(
            "These cases have patient references that are the same once normalised and "
            f"case-folded; rename or merge them by hand, then migrate again: {listed}"
        )
    for cases in groups.values():
        case = cases[0]
        normalised = _normalise(case.patient_ref)
        if normalised != case.patient_ref:
            Case.objects.filter(pk=case.pk).update(patient_ref=normalised)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('cases', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='case',
            name='patient_ref_unique_per_clinic',
        ),
        migrations.RunPython(normalise_refs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='case',
            constraint=models.UniqueConstraint(models.F('clinic'), django.db.models.functions.text.Lower('patient_ref'), name='patient_ref_unique_per_clinic_ci'),
        ),
    ]
