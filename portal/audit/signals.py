"""Logins, failed logins and lockouts become audit events."""

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from classifier.signals import classifier_action
from portal.audit.log import record
from portal.audit.models import AuditEvent


def _only_clinic(user):
    """The user's clinic when they belong to exactly one; login events of users in several
    clinics stay clinic-less and are matched to clinics by the actor's memberships."""
    if user is None:
        return None
    clinics = {m.clinic for m in user.memberships.select_related("clinic")[:2]}
    return clinics.pop() if len(clinics) == 1 else None


def _user_named(username):
    if not username:
        return None
    return get_user_model().objects.filter(username=username).first()


@receiver(user_logged_in, dispatch_uid="audit_login")
def on_login(sender, request, user, **kwargs):
    record(request, AuditEvent.Action.LOGIN, actor=user, clinic=_only_clinic(user))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def on_logout(sender, request, user, **kwargs):
    if user is not None:
        record(request, AuditEvent.Action.LOGOUT, actor=user, clinic=_only_clinic(user))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def on_login_failed(sender, credentials, request=None, **kwargs):
    username = (credentials or {}).get("username", "")[:150]
    record(
        request,
        AuditEvent.Action.LOGIN_FAILED,
        actor=None,
        clinic=_only_clinic(_user_named(username)),
        username=username,
    )


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def on_locked_out(sender, request, username=None, ip_address=None, **kwargs):
    username = (username or "")[:150]
    record(
        request,
        AuditEvent.Action.LOGIN_LOCKED,
        actor=None,
        clinic=_only_clinic(_user_named(username)),
        username=username,
        locked_ip=ip_address,
    )


@receiver(classifier_action, dispatch_uid="audit_classifier_action")
def on_classifier_action(sender, action, request, actor, obj, clinic_id, extra, **kwargs):
    record(request, AuditEvent.Action(action), obj=obj, actor=actor, clinic_id=clinic_id, **extra)
