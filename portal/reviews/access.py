"""Object access for the review pages. Lookups go through portal.cases.access (404 outside
the user's clinics, so ids reveal nothing); the role check comes after (403 for a clinic
member without the needed role)."""

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404

from portal.accounts.access import CAN_REVIEW, clinics_for, clinics_where, require_role
from portal.accounts.models import Clinic, Role

if TYPE_CHECKING:
    from classifier.models import Prediction
    from portal.cases.models import Case


def get_prediction_for(user: User, prediction_id: Any, allowed: Collection[Role] = CAN_REVIEW) -> "Prediction":
    """The prediction with public id ``prediction_id`` in one of the user's clinics (else
    404), provided the user holds an ``allowed`` role in that clinic (else 403)."""
    from portal.cases import access

    prediction = access.get_prediction_for(user, prediction_id)
    require_role(user, prediction.scan.case.clinic, allowed)
    return prediction


def get_case_for(user: User, case_id: Any, allowed: Collection[Role]) -> "Case":
    from portal.cases import access

    case = access.get_case_for(user, case_id)
    require_role(user, case.clinic, allowed)
    return case


def get_clinic_for(user: User, clinic_id: Any, allowed: Collection[Role]) -> Clinic:
    clinic = clinics_for(user).filter(pk=clinic_id).first()
    if clinic is None:
        raise Http404("No such clinic.")
    require_role(user, clinic, allowed)
    return clinic


def review_queue(user: User) -> "QuerySet[Prediction]":
    """Successful predictions on accepted scans of the user's reviewing clinics that nobody
    has reviewed yet. (NOT EXISTS rather than a LEFT JOIN ... IS NULL: PostgreSQL plans it
    as an anti-join with a sound row estimate; the clinic ids are a short list.)"""
    from django.db.models import Exists, OuterRef

    from classifier.models import Prediction, Review

    clinic_ids = list(clinics_where(user, CAN_REVIEW).values_list("pk", flat=True))
    return Prediction.objects.filter(
        error="", scan__status="accepted", scan__case__clinic__in=clinic_ids
    ).filter(~Exists(Review.objects.filter(prediction=OuterRef("pk"))))
