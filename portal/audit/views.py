"""The audit trail page: clinic admins see their clinics' events, superusers see all."""

from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import render

from portal.accounts.access import CAN_ADMINISTER, role_required
from portal.accounts.models import Clinic
from portal.audit.models import AuditEvent
from portal.audit.objects import describe
from portal.list_filters import FilterForm
from portal.types import AuthenticatedRequest


class EventFilterForm(FilterForm):
    field_order = ["action", "actor", "clinic", "date_from", "date_to", "order"]

    action = forms.ChoiceField(choices=[("", "Any action"), *AuditEvent.Action.choices], required=False)
    actor = forms.CharField(required=False, max_length=150, label="Actor (username)")
    clinic: "forms.ModelChoiceField[Clinic]" = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="All my clinics"
    )
    order = forms.ChoiceField(
        choices=[("newest", "Newest first"), ("oldest", "Oldest first")], required=False
    )

    def __init__(self, *args: Any, clinics: QuerySet[Clinic], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["clinic"]).queryset = clinics


def visible_events(user: User) -> QuerySet[AuditEvent]:
    """Superusers: every event. Clinic admins: events of their clinics, plus clinic-less
    events (logins, failed logins, lockouts) whose actor or attempted username is one of
    their clinics' members."""
    if user.is_superuser:
        return AuditEvent.objects.all()
    clinics = Clinic.objects.where_role(user, CAN_ADMINISTER)
    members = get_user_model().objects.filter(memberships__clinic__in=clinics)
    return AuditEvent.objects.filter(
        Q(clinic__in=clinics)
        | Q(clinic__isnull=True, actor__in=members)
        | Q(clinic__isnull=True, actor__isnull=True, actor_name__in=members.values("username"))
    )


@login_required
@role_required(CAN_ADMINISTER, "Only clinic admins see the audit trail.")
def events(request: AuthenticatedRequest) -> HttpResponse:
    form = EventFilterForm(request.GET or None, clinics=Clinic.objects.where_role(request.user, CAN_ADMINISTER))
    qs = visible_events(request.user).select_related("clinic")
    order = "newest"
    if form.is_valid():
        data = form.cleaned_data
        if data["action"]:
            qs = qs.filter(action=data["action"])
        if data["actor"]:
            qs = qs.filter(actor_name__iexact=data["actor"].strip())
        if data["clinic"]:
            qs = qs.filter(clinic=data["clinic"])
        qs = form.filter_days(qs, "at")
        order = data["order"] or "newest"
    qs = qs.order_by("at", "id") if order == "oldest" else qs.order_by("-at", "-id")
    page = Paginator(qs, 100).get_page(request.GET.get("page"))
    page.object_list = describe(list(page.object_list), request.user)
    return render(request, "audit/events.html", {"form": form, "page": page})
