"""Who may see and do what. Every view asks these helpers; nothing checks roles by hand.

An object of a clinic the user does not belong to answers 404 (its existence is not
revealed); a clinic member without the needed role gets 403.
"""

from collections.abc import Collection

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from portal.accounts.models import Clinic, Membership, Role
from portal.types import AnyUser

CAN_UPLOAD = {Role.CLINICIAN, Role.REVIEWER, Role.ADMIN}
CAN_REVIEW = {Role.REVIEWER, Role.ADMIN}
CAN_ADMINISTER = {Role.ADMIN}


def clinics_for(user: AnyUser) -> QuerySet[Clinic]:
    """The clinics whose data ``user`` may see: all for a superuser, else their memberships."""
    if not user.is_authenticated:
        return Clinic.objects.none()
    if user.is_superuser:
        return Clinic.objects.all()
    return Clinic.objects.filter(memberships__user=user)


def role_in(user: User, clinic: Clinic) -> Role | None:
    """The user's role in ``clinic``; superusers act as clinic admins everywhere."""
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(user=user, clinic=clinic).only("role").first()
    return Role(membership.role) if membership else None


def has_role(user: User, clinic: Clinic, allowed: Collection[Role]) -> bool:
    return role_in(user, clinic) in allowed


def require_role(user: User, clinic: Clinic, allowed: Collection[Role]) -> None:
    if not has_role(user, clinic, allowed):
        raise PermissionDenied("Your role in this clinic does not allow this.")


def clinics_where(user: User, allowed: Collection[Role]) -> QuerySet[Clinic]:
    """Clinics in which ``user`` holds one of the ``allowed`` roles."""
    if user.is_superuser:
        return Clinic.objects.all()
    return Clinic.objects.filter(
        memberships__user=user, memberships__role__in=[role.value for role in allowed]
    )
