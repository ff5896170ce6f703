"""Clinics are the tenancy boundary; a Membership gives a user one role in one clinic.

Who sees which rows is decided here once: ``Clinic.objects.for_user(user)`` (a superuser sees
every clinic, anyone else the clinics they are a member of), and every model whose rows
belong to a clinic gets ``for_user`` from ``ClinicScopedQuerySet``.
"""

import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, Self, TypeVar

from django.conf import settings
from django.db import models

if TYPE_CHECKING:
    from portal.types import AnyUser

_M = TypeVar("_M", bound=models.Model)


class ClinicQuerySet(models.QuerySet["Clinic"]):
    clinic_path = ""  # a clinic is its own clinic (see ClinicScopedQuerySet)

    def for_user(self, user: "AnyUser") -> Self:
        """The clinics whose data ``user`` may see: every clinic for a superuser, else the
        clinics they are a member of; none for an anonymous user."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(memberships__user=user)

    def where_role(self, user: "AnyUser", roles: Collection["Role"]) -> Self:
        """The clinics in which ``user`` holds one of ``roles`` (every clinic for a superuser,
        who acts as a clinic admin everywhere)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(memberships__user=user, memberships__role__in=[role.value for role in roles])


class Clinic(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClinicQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Clinic admin"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_clinic")
        ]
        ordering = ["clinic__name"]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.clinic}"


class ClinicScopedQuerySet(models.QuerySet[_M]):
    """Rows that belong to one clinic, reached from a row through ``clinic_path`` (a lookup
    such as ``"case__clinic"``; subclasses set it). ``for_user`` keeps the rows of the clinics
    the user may see; ``portal.accounts.access.get_for`` walks the same path to check roles."""

    clinic_path = "clinic"

    def for_user(self, user: "AnyUser") -> Self:
        return self.filter(**{f"{self.clinic_path}__in": Clinic.objects.for_user(user)})
