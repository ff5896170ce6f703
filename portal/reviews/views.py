"""Review queue, review page, case review history and agreement figures."""

from typing import Any, cast
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from classifier.models import Label, ModelVersion, Prediction, Review
from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW, CAN_UPLOAD, get_for, has_role, role_required
from portal.accounts.models import Clinic
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.cases.models import Case
from portal.reviews.forms import QueueFilterForm, ReviewForm
from portal.reviews.queue import filtered_queue
from portal.types import AuthenticatedRequest

QUEUE_PER_PAGE = 50


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


@login_required
@role_required(CAN_REVIEW)
def queue(request: AuthenticatedRequest) -> HttpResponse:
    form, predictions = filtered_queue(request.user, request.GET)
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
        {"form": form, "page": page, "filters": form.kept_query()},
    )


@login_required
@require_http_methods(["GET", "POST"])
def review(request: AuthenticatedRequest, prediction_id: UUID) -> HttpResponse:
    prediction = get_for(
        request.user, Prediction.objects.select_related("model_version"), public_id=prediction_id, roles=CAN_REVIEW
    )
    if prediction.error or prediction.scan.status != "accepted":
        raise Http404("This prediction cannot be reviewed.")
    # The queue's filters ride along as one hidden field: the review form has a "label"
    # field of its own, which must not be mistaken for the queue's label filter.
    params = QueryDict(request.POST.get("queue_filters", "")) if request.method == "POST" else request.GET
    filters = QueueFilterForm(params).kept_query()
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
        _, remaining = filtered_queue(request.user, QueryDict(filters))
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
    case = get_for(request.user, Case.objects, pk=case_id, roles=CAN_UPLOAD)
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
            "can_review": has_role(request.user, case.clinic, CAN_REVIEW),
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
@role_required(CAN_ADMINISTER)
def agreement(request: AuthenticatedRequest) -> HttpResponse:
    clinics = Clinic.objects.where_role(request.user, CAN_ADMINISTER)
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
            "clinics": Clinic.objects.where_role(request.user, CAN_ADMINISTER),
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
