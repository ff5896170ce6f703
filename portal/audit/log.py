"""record(): the one way to write an audit event."""

from portal.audit.models import AuditEvent


def client_ip(request):
    """The same address login throttling uses (portal.audit.ip honours PROXY_COUNT)."""
    from portal.audit.ip import client_ip as resolve

    return resolve(request)


def record(request, action, *, obj=None, clinic=None, clinic_id=None, actor=None, **extra):
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=getattr(actor, "username", "") or extra.pop("username", ""),
        clinic_id=clinic.pk if clinic is not None else clinic_id,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        ip_address=client_ip(request),
        extra=extra,
    )
