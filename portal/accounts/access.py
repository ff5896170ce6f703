"""Who may see and do what. Every view goes through these; nothing checks roles by hand.

Which rows a user may see is each model's ``objects.for_user(user)`` (``Case``, ``Batch``,
``Scan``, ``PredictionJob``, ``Prediction``, ``Review``, ``Clinic``; the rule is in
``portal.accounts.models``). An object reached by its id comes through ``get_for``: one of
another clinic, or one that does not exist, answers 404 alike (ids reveal nothing); a member
of its clinic without the needed role gets 403. A page that needs a role in some clinic
(the review queue, the audit trail) carries ``@role_required``.
"""

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, Concatenate, ParamSpec, Protocol, Self, TypeVar

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db.models import Model
from django.http import Http404

from portal.accounts.models import Clinic, Membership, Role
from portal.types import AnyUser, AuthenticatedRequest

CAN_UPLOAD = {Role.CLINICIAN, Role.REVIEWER, Role.ADMIN}
CAN_REVIEW = {Role.REVIEWER, Role.ADMIN}
CAN_ADMINISTER = {Role.ADMIN}

ROLE_REFUSED = "Your role in this clinic does not allow this."

_M_co = TypeVar("_M_co", bound=Model, covariant=True)
_P = ParamSpec("_P")
_R = TypeVar("_R")
_RoleView = Callable[Concatenate[AuthenticatedRequest, _P], _R]


class ScopedRows(Protocol):
    """What ``for_user`` gives (a ``ClinicQuerySet`` or a ``ClinicScopedQuerySet``), as
    ``get_for`` reads it."""

    @property
    def clinic_path(self) -> str: ...

    def select_related(self, *fields: Any) -> Self: ...

    def get(self, *args: Any, **kwargs: Any) -> Any: ...


class Scoped(Protocol[_M_co]):
    """A model's manager or queryset with ``for_user``; its ``model`` gives ``get_for``'s
    result type."""

    @property
    def model(self) -> type[_M_co]: ...

    def for_user(self, user: AnyUser) -> ScopedRows: ...


def role_in(user: User, clinic: Clinic) -> Role | None:
    """The user's role in ``clinic``; superusers act as clinic admins everywhere."""
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(user=user, clinic=clinic).only("role").first()
    return Role(membership.role) if membership else None


def has_role(user: User, clinic: Clinic, roles: Collection[Role]) -> bool:
    return role_in(user, clinic) in roles


def require_role(
    user: User, roles: Collection[Role], clinic: Clinic | None = None, message: str = ROLE_REFUSED
) -> None:
    """403 unless ``user`` holds one of ``roles`` in ``clinic`` (in some clinic when None)."""
    if clinic is None:
        allowed = Clinic.objects.where_role(user, roles).exists()
    else:
        allowed = has_role(user, clinic, roles)
    if not allowed:
        raise PermissionDenied(message)


def clinic_of(obj: Any, clinic_path: str) -> Clinic:
    """The clinic of ``obj``, reached through ``clinic_path`` ("" for a clinic itself)."""
    for name in clinic_path.split("__") if clinic_path else ():
        obj = getattr(obj, name)
    return obj


def get_for(user: User, queryset: Scoped[_M_co], roles: Collection[Role] | None = None, **lookup: Any) -> _M_co:
    """The one object of ``queryset`` (a model's manager or queryset with ``for_user``)
    matching ``lookup`` among the rows ``user`` may see, else 404; with ``roles``, 403
    unless the user holds one of them in the object's clinic.

    ``get_for(request.user, Case.objects, pk=case_id, roles=CAN_UPLOAD)``"""
    scoped = queryset.for_user(user)
    if scoped.clinic_path:  # the role check reads the clinic: fetched in the same query
        scoped = scoped.select_related(scoped.clinic_path)
    try:
        obj = scoped.get(**lookup)
    except (ObjectDoesNotExist, ValueError, ValidationError):  # scoped.model.DoesNotExist among them
        raise Http404("No such object.") from None
    if roles is not None:
        require_role(user, roles, clinic=clinic_of(obj, scoped.clinic_path))
    return obj


def role_required(
    roles: Collection[Role], message: str = "Your role does not allow this page."
) -> Callable[[_RoleView[_P, _R]], _RoleView[_P, _R]]:
    """View decorator: 403 unless the signed-in user holds one of ``roles`` in at least one
    clinic (place it under ``@login_required``)."""

    def decorator(view: _RoleView[_P, _R]) -> _RoleView[_P, _R]:
        @wraps(view)
        def wrapped(request: AuthenticatedRequest, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            require_role(request.user, roles, message=message)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
