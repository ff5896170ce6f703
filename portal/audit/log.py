"""record(): the one way to write an audit event."""

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Model
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from portal.accounts.models import Clinic
from portal.audit.models import AuditEvent

SEARCH_HASH_SALT = "portal.audit.search-term"


def search_term_digest(term: str) -> str:
    """A keyed HMAC-SHA256 (keyed with SECRET_KEY) of a search term, case-folded: the
    trail can show that two searches were for the same reference, and an auditor who knows
    a reference can check for it, but the trail does not hold patient references in clear.
    Rotating SECRET_KEY changes the digests of later searches."""
    return salted_hmac(SEARCH_HASH_SALT, term.casefold(), algorithm="sha256").hexdigest()


def client_ip(request: HttpRequest | None) -> str | None:
    """The same address login throttling uses (portal.audit.ip honours PROXY_COUNT)."""
    from portal.audit.ip import client_ip as resolve

    return resolve(request)


def record(request: HttpRequest | None, action: str, *, obj: Model | None = None, clinic: Clinic | None = None,
           clinic_id: Any = None, actor: User | None = None, **extra: Any) -> AuditEvent:
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=getattr(actor, "username", "") or extra.pop("username", ""),
        clinic_id=clinic.pk if clinic is not None else clinic_id,
        action=action,
        object_type=(obj._meta.model_name or "") if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        ip_address=client_ip(request),
        extra=extra,
    )
