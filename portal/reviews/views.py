"""Review queue, review page, case review history and agreement figures."""

from collections.abc import Collection
from datetime import datetime, time
from typing import Any, cast
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Abs
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from classifier.models import Label, ModelVersion, Prediction, Review
from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW, CAN_UPLOAD, clinics_where
from portal.accounts.models import Clinic, Role
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.reviews.access import get_case_for, get_prediction_for, review_queue
from portal.reviews.forms import CONFIDENCE_BANDS, QueueFilterForm, ReviewForm
from portal.types import AuthenticatedRequest

QUEUE_PER_PAGE = 50
QUEUE_FILTERS = ("model_version", "label", "band", "date_from", "date_to", "sort")


def _require_some_role(user: User, allowed: Collection[Role]) -> QuerySet[Clinic]:
    clinics = clinics_where(user, allowed)
    if not clinics.exists():
        raise PermissionDenied("Your role does not allow this page.")
    return clinics


def _filtered_queue(user: User, params: QueryDict) -> tuple[QueueFilterForm, QuerySet[Prediction]]:
    """(form, queryset) for the queue filtered and sorted by ``params`` (a QueryDict)."""
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
        tz = timezone.get_current_timezone()
        if data["date_from"]:
            queue = queue.filter(created_at__gte=datetime.combine(data["date_from"], time.min, tz))
        if data["date_to"]:
            queue = queue.filter(created_at__lte=datetime.combine(data["date_to"], time.max, tz))
        sort = data["sort"] or "confidence"
    if sort == "newest":
        queue = queue.order_by("-created_at", "-id")
    elif sort == "oldest":
        queue = queue.order_by("created_at", "id")
    else:
        queue = queue.annotate(margin=Abs(F("probability") - 0.5)).order_by(
            "margin", "created_at", "id"
        )
    return form, queue


def _filter_query(params: QueryDict) -> str:
    """The queue filters of ``params`` as a query string (nothing else is carried)."""
    kept = QueryDict(mutable=True)
    for key in QUEUE_FILTERS:
        if value := params.get(key):
            kept[key] = value
    return kept.urlencode()


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


@login_required
def queue(request: AuthenticatedRequest) -> HttpResponse:
    _require_some_role(request.user, CAN_REVIEW)
    form, predictions = _filtered_queue(request.user, request.GET)
    # Sort and page on the narrow rows (ids), then load the page's 50 with their relations:
    # sorting every waiting prediction with all its joined columns costs several times more.
    page = Paginator(predictions.values_list("pk", flat=True), QUEUE_PER_PAGE).get_page(request.GET.get("page"))
    loaded = Prediction.objects.select_related("scan__case__clinic", "model_version").in_bulk(list(page))
    shown = [loaded[pk] for pk in page.object_list if pk in loaded]
    page.object_list = cast(Any, shown)  # the page lists predictions, not their ids
    # The queue lists scans' file names: which scans were shown is part of the trail.
    record(
        request, AuditEvent.Action.QUEUE_VIEW, page=page.number,
        scans=[str(prediction.scan_id) for prediction in shown],
    )
    return render(
        request,
        "reviews/queue.html",
        {"form": form, "page": page, "filters": _filter_query(request.GET)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def review(request: AuthenticatedRequest, prediction_id: UUID) -> HttpResponse:
    prediction = get_prediction_for(request.user, prediction_id, CAN_REVIEW)
    if prediction.error or prediction.scan.status != "accepted":
        raise Http404("This prediction cannot be reviewed.")
    # The queue's filters ride along as one hidden field: the review form has a "label"
    # field of its own, which must not be mistaken for the queue's label filter.
    if request.method == "POST":
        filters = _filter_query(QueryDict(request.POST.get("queue_filters", "")))
    else:
        filters = _filter_query(request.GET)
    form = ReviewForm(request.POST or None, prediction=prediction)
    if request.method == "POST" and form.is_valid():
        created = _save_review(request, prediction, form.cleaned_data)
        if created is None:
            messages.warning(
                request, "You have already reviewed this prediction; your earlier verdict stands."
            )
        else:
            messages.success(
                request,
                f"{created.get_verdict_display()}: {prediction.scan} is "
                f"{Label(created.label).label.lower()}.",
            )
        _, remaining = _filtered_queue(request.user, QueryDict(filters))
        following = remaining.exclude(pk=prediction.pk).first()
        if following is None:
            messages.info(request, "The review queue is empty.")
            return redirect(_with_query(reverse("reviews:queue"), filters))
        return redirect(_with_query(reverse("reviews:review", args=[following.public_id]), filters))
    scan = prediction.scan
    record(request, AuditEvent.Action.SCAN_VIEW, obj=scan, clinic=scan.case.clinic, page="review")
    return render(
        request,
        "reviews/review.html",
        {
            "prediction": prediction,
            "scan": scan,
            "case": scan.case,
            "all_predictions": scan.predictions.select_related("model_version").order_by(
                "model_version__architecture", "model_version__version"
            ),
            "reviews": scan.reviews.select_related("reviewer", "prediction__model_version"),
            "own_review": prediction.reviews.filter(reviewer=request.user).first(),
            "form": form,
            "filters": filters,
        },
    )


def _save_review(request: HttpRequest, prediction: Prediction, data: dict[str, Any]) -> Review | None:
    """Record one reviewer's verdict, once: a second submission by the same reviewer (a
    double click, a resent form, a second tab) returns None and records nothing. The database
    holds the rule (one review per prediction and reviewer), so two requests at once cannot
    both pass."""
    try:
        with transaction.atomic():
            created = Review.objects.create(
                prediction=prediction,
                scan=prediction.scan,
                reviewer=cast(User, request.user),  # signed in: login_required, or the API's IsAuthenticated
                verdict=data["verdict"],
                label=data["label"],
                note=data["note"],
            )
            record(
                request,
                AuditEvent.Action.REVIEW,
                obj=created,
                clinic=prediction.scan.case.clinic,
                prediction=str(prediction.public_id),
                scan=str(prediction.scan_id),
                verdict=created.verdict,
                label=created.label,
            )
    except IntegrityError:
        return None
    return created


HISTORY_SCANS_PER_PAGE = 25


@login_required
def case_history(request: AuthenticatedRequest, case_id: UUID) -> HttpResponse:
    """Every prediction of the case's scans with every reviewer's verdict, oldest scan first,
    a page of scans at a time (the CSV export has them all)."""
    case = get_case_for(request.user, case_id, CAN_UPLOAD)
    scans = case.scans.filter(status="accepted").order_by("created_at", "position", "id")
    page = Paginator(scans, HISTORY_SCANS_PER_PAGE).get_page(request.GET.get("page"))
    by_scan: dict[UUID, dict[str, Any]] = {scan.pk: {"scan": scan, "predictions": [], "reviews": []} for scan in page}
    predictions = (
        Prediction.objects.filter(scan__in=list(by_scan))
        .select_related("model_version")
        .order_by("model_version__architecture", "model_version__version", "id")
    )
    reviews = (
        Review.objects.filter(scan__in=list(by_scan))
        .select_related("reviewer", "prediction__model_version")
        .order_by("created_at", "id")
    )
    for prediction in predictions:
        by_scan[prediction.scan_id]["predictions"].append(prediction)
    for item in reviews:
        by_scan[item.scan_id]["reviews"].append(item)
    record(request, AuditEvent.Action.CASE_VIEW, obj=case, clinic=case.clinic, page="review history")
    return render(
        request,
        "reviews/case_history.html",
        {
            "case": case,
            "page": page,
            "rows": list(by_scan.values()),
            "can_review": clinics_where(request.user, CAN_REVIEW).filter(pk=case.clinic_id).exists(),
        },
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def agreement_rows(clinics: QuerySet[Clinic]) -> list[dict[str, Any]]:
    """Per model version, over every review of its assessed predictions in ``clinics`` (a
    not-assessed prediction has no label to agree with)."""
    tumor, no_tumor = Label.TUMOR, Label.NO_TUMOR
    counts = (
        Review.objects.filter(prediction__scan__case__clinic__in=clinics, prediction__assessed=True)
        .values("prediction__model_version")
        .annotate(
            n=Count("id"),
            confirmed=Count("id", filter=Q(verdict=Review.Verdict.CONFIRMED)),
            tp=Count("id", filter=Q(prediction__label=tumor, label=tumor)),
            fp=Count("id", filter=Q(prediction__label=tumor, label=no_tumor)),
            tn=Count("id", filter=Q(prediction__label=no_tumor, label=no_tumor)),
            fn=Count("id", filter=Q(prediction__label=no_tumor, label=tumor)),
        )
    )
    versions = ModelVersion.objects.in_bulk([c["prediction__model_version"] for c in counts])
    rows = []
    for c in counts:
        rows.append(
            {
                "version": versions[c["prediction__model_version"]],
                **c,
                "corrected": c["n"] - c["confirmed"],
                "confirmed_rate": _ratio(c["confirmed"], c["n"]),
                "sensitivity": _ratio(c["tp"], c["tp"] + c["fn"]),
                "specificity": _ratio(c["tn"], c["tn"] + c["fp"]),
                "positives": c["tp"] + c["fn"],
                "negatives": c["tn"] + c["fp"],
            }
        )
    rows.sort(key=lambda r: (r["version"].architecture, r["version"].version))
    return rows


@login_required
def agreement(request: AuthenticatedRequest) -> HttpResponse:
    clinics = _require_some_role(request.user, CAN_ADMINISTER)
    chosen = request.GET.get("clinic")
    if chosen:
        clinics = clinics.filter(pk=chosen) if _is_uuid(chosen) else clinics.none()
        if not clinics.exists():
            raise Http404("No such clinic.")
    return render(
        request,
        "reviews/agreement.html",
        {
            "rows": agreement_rows(clinics),
            "clinics": clinics_where(request.user, CAN_ADMINISTER),
            "chosen": chosen or "",
        },
    )


def _is_uuid(value: Any) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
