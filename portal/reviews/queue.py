"""The review queue: what is waiting for a reviewer, filtered and sorted as the queue page asks."""

from django.contrib.auth.models import User
from django.db.models import Exists, F, OuterRef, QuerySet
from django.db.models.functions import Abs
from django.http import QueryDict

from classifier.models import Prediction, Review
from portal.accounts.access import CAN_REVIEW
from portal.accounts.models import Clinic
from portal.reviews.forms import CONFIDENCE_BANDS, QueueFilterForm


def review_queue(user: User) -> QuerySet[Prediction]:
    """Successful predictions on accepted scans of the user's reviewing clinics that nobody
    has reviewed yet. (NOT EXISTS rather than a LEFT JOIN ... IS NULL: PostgreSQL plans it
    as an anti-join with a sound row estimate; the clinic ids are a short list.)"""
    clinic_ids = list(Clinic.objects.where_role(user, CAN_REVIEW).values_list("pk", flat=True))
    return Prediction.objects.filter(
        error="", scan__status="accepted", scan__case__clinic__in=clinic_ids
    ).filter(~Exists(Review.objects.filter(prediction=OuterRef("pk"))))


def lowest_confidence_first(predictions: QuerySet[Prediction]) -> QuerySet[Prediction]:
    return predictions.annotate(margin=Abs(F("probability") - 0.5)).order_by("margin", "created_at", "id")


def filtered_queue(user: User, params: QueryDict) -> tuple[QueueFilterForm, QuerySet[Prediction]]:
    """(form, queryset): the queue filtered and sorted by ``params`` (a QueryDict)."""
    form = QueueFilterForm(params or None)
    queue = review_queue(user).select_related("scan__case__clinic", "model_version")
    sort = "confidence"
    if form.is_valid():
        data = form.cleaned_data
        if data["model_version"]:
            queue = queue.filter(model_version=data["model_version"])
        if data["label"]:
            queue = queue.filter(label=data["label"])
        if data["band"]:
            low, high, _ = CONFIDENCE_BANDS[data["band"]]
            queue = queue.annotate(margin=Abs(F("probability") - 0.5)).filter(
                margin__gte=low, margin__lt=high
            )
        queue = form.filter_days(queue, "created_at")
        sort = data["sort"] or "confidence"
    if sort == "newest":
        return form, queue.order_by("-created_at", "-id")
    if sort == "oldest":
        return form, queue.order_by("created_at", "id")
    return form, lowest_confidence_first(queue)
