"""Object access for the review pages: one helper per object kind, each 404 outside the
user's clinics (existence is not revealed) and 403 for a clinic member without the role."""

from django.http import Http404

from portal.accounts.access import CAN_REVIEW, clinics_for, clinics_where, require_role


def visible_predictions(user):
    from classifier.models import Prediction

    return Prediction.objects.filter(scan__case__clinic__in=clinics_for(user))


def get_prediction_for(user, prediction_id, allowed=CAN_REVIEW):
    """The prediction ``prediction_id`` if it is in one of the user's clinics (else 404),
    and the user holds an ``allowed`` role in that clinic (else 403)."""
    prediction = (
        visible_predictions(user)
        .select_related("scan__case__clinic", "model_version", "job")
        .filter(pk=prediction_id)
        .first()
    )
    if prediction is None:
        raise Http404("No such prediction.")
    require_role(user, prediction.scan.case.clinic, allowed)
    return prediction


def get_case_for(user, case_id, allowed):
    from portal.cases.models import Case

    case = Case.objects.select_related("clinic").filter(
        pk=case_id, clinic__in=clinics_for(user)
    ).first()
    if case is None:
        raise Http404("No such case.")
    require_role(user, case.clinic, allowed)
    return case


def get_clinic_for(user, clinic_id, allowed):
    clinic = clinics_for(user).filter(pk=clinic_id).first()
    if clinic is None:
        raise Http404("No such clinic.")
    require_role(user, clinic, allowed)
    return clinic


def review_queue(user):
    """Successful predictions on accepted scans of the user's reviewing clinics that nobody
    has reviewed yet."""
    from classifier.models import Prediction

    return Prediction.objects.filter(
        error="",
        scan__status="accepted",
        scan__case__clinic__in=clinics_where(user, CAN_REVIEW),
        reviews__isnull=True,
    )
