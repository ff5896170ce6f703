"""Logins, failed logins and lockouts become audit events."""

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from classifier.signals import classifier_action
from portal.accounts.models import Clinic
from portal.audit.log import record
from portal.audit.models import AuditEvent


def _only_clinic(user: User | None) -> Clinic | None:
    """The user's clinic when they belong to exactly one; login events of users in several
    clinics stay clinic-less and are matched to clinics by the actor's memberships."""
    if user is None:
        return None
    clinics = {m.clinic for m in user.memberships.select_related("clinic")[:2]}
    return clinics.pop() if len(clinics) == 1 else None


def _user_named(username: str) -> User | None:
    if not username:
        return None
    return User.objects.filter(username=username).first()


@receiver(user_logged_in, dispatch_uid="audit_login")
def on_login(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record(request, AuditEvent.Action.LOGIN, actor=user, clinic=_only_clinic(user))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def on_logout(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        record(request, AuditEvent.Action.LOGOUT, actor=user, clinic=_only_clinic(user))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def on_login_failed(sender: Any, credentials: dict[str, Any] | None, request: HttpRequest | None = None,
                    **kwargs: Any) -> None:
    username = (credentials or {}).get("username", "")[:150]
    record(
        request,
        AuditEvent.Action.LOGIN_FAILED,
        actor=None,
        clinic=_only_clinic(_user_named(username)),
        username=username,
    )


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def on_locked_out(sender: Any, request: HttpRequest, username: str | None = None, ip_address: str | None = None,
                  **kwargs: Any) -> None:
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
def on_classifier_action(sender: Any, action: str, request: HttpRequest | None, actor: User | None, obj: Any,
                         clinic_id: Any, extra: dict[str, Any], **kwargs: Any) -> None:
    record(request, AuditEvent.Action(action), obj=obj, actor=actor, clinic_id=clinic_id, **extra)
