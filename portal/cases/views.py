"""Patient cases, batch upload, batch progress and the private scan images.

Every view that takes an object id reaches the object through
``portal.accounts.access.get_for``."""

import io
import logging
import mimetypes
import secrets
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from classifier.jobs import RERUNNABLE, rerun_failed
from classifier.models import Prediction, PredictionJob
from portal.accounts.access import CAN_REVIEW, CAN_UPLOAD, get_for, has_role, role_required
from portal.accounts.models import Clinic, Role
from portal.audit.log import record, search_term_digest
from portal.audit.models import AuditEvent
from portal.cases.dicom_intake import UploadRefused
from portal.cases.forms import CaseForm, PredictForm, UploadForm, model_choices
from portal.cases.models import Batch, Case, Scan
from portal.cases.private_files import private as _private
from portal.cases.private_files import serve_file, serve_stored
from portal.cases.refs import normalize_patient_ref
from portal.cases.uploads import active_versions, ingest, queue_predictions
from portal.types import AuthenticatedRequest

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
THUMBNAIL_SIZE = 160
CASES_PER_PAGE = 25
SCANS_PER_PAGE = 60
HISTORY_PER_PAGE = 50
BATCHES_PER_PAGE = 20
RESULTS_PER_PAGE = 100  # a batch page's scans (a batch holds up to UPLOAD_MAX_FILES)
SEARCHES_KEPT = 20  # per session; older search tokens expire

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from PIL import Image


def _start_search(request: AuthenticatedRequest) -> HttpResponse:
    """POST of the search form: keep the term in the session under a random token and
    redirect to a URL that carries only the token, so that patient references never reach
    a URL (access logs, browser history, Referer). One audit event per search, with the
    term as a keyed hash."""
    term = normalize_patient_ref(request.POST.get("q", ""))[:64]
    if not term:
        return redirect("cases:list")
    searches = dict(request.session.get("case_searches", {}))
    token = secrets.token_urlsafe(12)
    searches[token] = term
    request.session["case_searches"] = dict(list(searches.items())[-SEARCHES_KEPT:])
    record(request, AuditEvent.Action.SEARCH, term_hmac=search_term_digest(term))
    return redirect(f"{reverse('cases:list')}?s={token}")


@login_required
@require_http_methods(["GET", "POST"])
def case_list(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        return _start_search(request)
    cases = Case.objects.for_user(request.user).select_related("clinic")
    token = request.GET.get("s", "")
    query = request.session.get("case_searches", {}).get(token, "") if token else ""
    if token and not query:
        messages.info(request, "That search has expired; search again.")
        token = ""
    if query:
        cases = cases.filter(patient_ref__icontains=query)
    cases = cases.order_by("-last_activity_at", "-created_at", "id")
    page = Paginator(cases, CASES_PER_PAGE).get_page(request.GET.get("page"))
    # Scans are counted for the cases of this page only, not for every case of the clinic.
    counts = dict(
        Scan.objects.filter(case__in=[case.pk for case in page], status=Scan.Status.ACCEPTED)
        .order_by().values("case").annotate(n=Count("id")).values_list("case", "n")
    )
    for case in page:
        case.scan_count = counts.get(case.pk, 0)
    can_create = Clinic.objects.where_role(request.user, CAN_UPLOAD).exists()
    return render(
        request,
        "cases/case_list.html",
        {"page": page, "query": query, "search_token": token, "can_create": can_create},
    )


@login_required
@require_http_methods(["GET", "POST"])
@role_required(CAN_UPLOAD, "You are not a member of a clinic where you may create cases.")
def case_create(request: AuthenticatedRequest) -> HttpResponse:
    form = CaseForm(request.POST or None, clinics=Clinic.objects.where_role(request.user, CAN_UPLOAD))
    if request.method == "POST" and form.is_valid():
        case = form.save(commit=False)
        case.created_by = request.user
        try:
            with transaction.atomic():
                case.save()
                record(request, AuditEvent.Action.CASE_CREATE, obj=case, clinic=case.clinic)
        except IntegrityError:  # created by someone else since clean()
            form.existing_case = Case.objects.for_user(request.user).filter(
                clinic=case.clinic, patient_ref__iexact=case.patient_ref
            ).first()
            form.add_error("patient_ref", "A case with this patient reference already exists in this clinic.")
        else:
            messages.success(request, f"Case {case.patient_ref} created.")
            return redirect("cases:detail", case_id=case.pk)
    return render(request, "cases/case_form.html", {"form": form})


def _upload_form(data: Any = None, files: Any = None) -> UploadForm:
    return UploadForm(data, files, active_versions=active_versions())


@login_required
@require_GET
def case_detail(request: AuthenticatedRequest, case_id: UUID) -> HttpResponse:
    case = get_for(request.user, Case.objects, pk=case_id)
    record(request, AuditEvent.Action.CASE_VIEW, obj=case, clinic=case.clinic)
    return _render_case(request, case, _upload_form())


def _render_case(request: AuthenticatedRequest, case: Case, upload_form: UploadForm, status: int = 200) -> HttpResponse:
    scans = case.scans.filter(status=Scan.Status.ACCEPTED).order_by("-created_at", "-position", "-id")
    scan_page = Paginator(scans, SCANS_PER_PAGE).get_page(request.GET.get("scans"))
    history = (
        Prediction.objects.filter(scan__case=case)
        .select_related("scan", "model_version")
        .prefetch_related("reviews__reviewer")
        .order_by("-created_at", "-id")
    )
    history_page = Paginator(history, HISTORY_PER_PAGE).get_page(request.GET.get("history"))
    batches = (
        case.batches.select_related("uploaded_by")
        .prefetch_related("prediction_jobs__model_version")
        .order_by("-created_at", "-id")
    )
    batch_page = Paginator(batches, BATCHES_PER_PAGE).get_page(request.GET.get("uploads"))
    context = {
        "case": case,
        "scan_page": scan_page,
        "history_page": history_page,
        "batch_page": batch_page,
        "upload_form": upload_form,
        "can_upload": has_role(request.user, case.clinic, CAN_UPLOAD),
        "can_review": has_role(request.user, case.clinic, CAN_REVIEW),
        "max_files": settings.UPLOAD_MAX_FILES,
        "max_file_mb": settings.UPLOAD_MAX_FILE_BYTES // (1024 * 1024),
    }
    return render(request, "cases/case_detail.html", context, status=status)


@login_required
@require_POST
def case_upload(request: AuthenticatedRequest, case_id: UUID) -> HttpResponse:
    case = get_for(request.user, Case.objects, pk=case_id, roles=CAN_UPLOAD)
    form = _upload_form(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "The upload was not accepted; see the form below.")
        return _render_case(request, case, form, status=400)
    uploads = form.cleaned_data["files"]
    chosen = form.cleaned_data["models"]
    try:
        result = ingest(case, request.user, uploads, chosen)
    except OSError:  # storage full or unreachable: ingest() removed what it had written
        log.exception("upload to case %s could not be stored", case.pk)
        messages.error(
            request,
            "The scans could not be stored (a storage error on the server); nothing was "
            "recorded. Try again later; if it persists, tell your administrator.",
        )
        return _render_case(request, case, _upload_form(), status=503)
    except UploadRefused as exc:
        messages.error(request, exc.message)
        return _render_case(request, case, form, status=400)
    batch = result.batch
    record(
        request, AuditEvent.Action.UPLOAD, obj=batch, clinic=case.clinic, case=str(case.pk),
        files=batch.files_received, accepted=batch.accepted_count,
        rejected=batch.rejected_count, duplicates=batch.duplicate_count,
        models=[job.model_version.display_name for job in result.jobs],
    )
    _record_queued(request, batch, result.jobs)
    messages.success(
        request,
        f"{batch.files_received} file{pluralize(batch.files_received)} received: "
        f"{batch.accepted_count} accepted, {batch.rejected_count} rejected, "
        f"{batch.duplicate_count} duplicate{pluralize(batch.duplicate_count)}.",
    )
    if batch.accepted_count and not result.jobs:
        if form.active_versions:
            messages.warning(request, "The chosen models are no longer active; no analysis was queued.")
        else:
            messages.warning(
                request,
                "No model is active, so no analysis was queued. The scans are stored; "
                "run the analysis from this page once a model is active.",
            )
    elif result.missing_models:
        messages.warning(
            request, "No active version for: " + ", ".join(result.missing_models) + "; not queued."
        )
    return redirect("cases:batch", batch_id=batch.pk)


def _get_batch(user: User, batch_id: UUID, roles: Collection[Role] | None = None) -> Batch:
    return get_for(user, Batch.objects.select_related("uploaded_by"), pk=batch_id, roles=roles)


def _record_queued(request: HttpRequest, batch: Batch, jobs: Iterable[PredictionJob]) -> None:
    for job in jobs:
        record(
            request, AuditEvent.Action.ANALYSIS_QUEUE, obj=batch, clinic=batch.case.clinic,
            job=str(job.public_id), model=job.model_version.display_name,
        )


def _batch_jobs(batch: Batch) -> list[PredictionJob]:
    return list(batch.prediction_jobs.select_related("model_version").order_by("model_version__architecture"))


def _job_json(job: PredictionJob) -> dict[str, Any]:
    return {
        "id": str(job.public_id),
        "model": job.model_version.display_name,
        "architecture": job.model_version.architecture,
        "status": job.status,
        "status_display": job.state_display,
        "done": job.done,
        "failed": job.failed,
        "total": job.total,
        "percent": job.percent,
        "finished": job.is_finished,
        "attempt": job.attempt,
        "waiting": job.is_waiting,
        "seconds_left": job.seconds_left,
        "time_left": job.time_left_display,
        "error": job.user_error,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _failed_rows(batch: Batch, jobs: list[PredictionJob]) -> list[dict[str, Any]]:
    """Every scan of the batch (not only the page's) that a model could not analyse and that
    has no result from it: the failed attempts alone, so the list is as long as the failures."""
    from django.db.models import Exists, OuterRef

    has_result = Prediction.objects.filter(
        scan=OuterRef("scan"), model_version=OuterRef("model_version"), error=""
    )
    failures = (
        Prediction.objects.filter(scan__batch=batch, scan__status=Scan.Status.ACCEPTED)
        .exclude(error="")
        .filter(~Exists(has_result))
        .select_related("scan", "model_version")
        .order_by("scan__position", "created_at", "id")
    )
    rows: dict[UUID, dict[str, Any]] = {}
    for prediction in failures:  # the latest attempt per scan and model is kept
        row = rows.setdefault(prediction.scan_id, {"scan": prediction.scan, "cells": {}})
        row["cells"][prediction.model_version_id] = prediction
    return [
        {"scan": row["scan"], "cells": [row["cells"].get(job.model_version_id) for job in jobs]}
        for row in rows.values()
    ]


@login_required
@require_GET
def batch_detail(request: AuthenticatedRequest, batch_id: UUID) -> HttpResponse:
    batch = _get_batch(request.user, batch_id)
    record(request, AuditEvent.Action.BATCH_VIEW, obj=batch, clinic=batch.case.clinic)
    jobs = _batch_jobs(batch)
    accepted = batch.scans.filter(status=Scan.Status.ACCEPTED).order_by("position", "id")
    result_page = Paginator(accepted, RESULTS_PER_PAGE).get_page(request.GET.get("results"))
    not_accepted = (
        batch.scans.exclude(status=Scan.Status.ACCEPTED)
        .select_related("duplicate_of")
        .order_by("position", "id")
    )
    rejected_page = Paginator(not_accepted, RESULTS_PER_PAGE).get_page(request.GET.get("rejected"))
    page_scans = list(result_page)
    predictions: dict[tuple[UUID, int], Prediction] = {}
    attempts = Prediction.objects.filter(scan__in=page_scans).select_related("model_version")
    for prediction in attempts.order_by("created_at", "id"):
        key = (prediction.scan_id, prediction.model_version_id)
        if key not in predictions or predictions[key].error:  # a result beats any failed attempt
            predictions[key] = prediction
    rows = [
        {"scan": scan, "cells": [predictions.get((scan.pk, job.model_version_id)) for job in jobs]}
        for scan in page_scans
    ]
    missing = {
        arch: version for arch, version in active_versions().items()
        if version.pk not in {job.model_version_id for job in jobs}
    }
    context = {
        "batch": batch,
        "case": batch.case,
        "jobs": jobs,
        "rows": rows,
        "result_page": result_page,
        "rejected_page": rejected_page,
        "any_result": bool(jobs) and Prediction.objects.filter(scan__batch=batch).exists(),
        "all_finished": all(job.is_finished for job in jobs),
        "predict_form": (PredictForm(choices=model_choices(missing))
                         if missing and result_page.paginator.count else None),
        "show_admin_errors": request.user.is_superuser,
        "failed_rows": _failed_rows(batch, jobs),
        "can_rerun": has_role(request.user, batch.case.clinic, CAN_UPLOAD)
        and any(job.status in RERUNNABLE and job.failed for job in jobs),
        "can_review": has_role(request.user, batch.case.clinic, CAN_REVIEW),
    }
    return render(request, "cases/batch_detail.html", context)


@login_required
@require_POST
def batch_rerun(request: AuthenticatedRequest, batch_id: UUID) -> HttpResponse:
    """Re-run the scans of this batch that could not be analysed (a new attempt each)."""
    batch = _get_batch(request.user, batch_id, roles=CAN_UPLOAD)
    with transaction.atomic():
        jobs = rerun_failed(batch)
        for job in jobs:
            record(
                request, AuditEvent.Action.JOB_RERUN, obj=job, clinic=batch.case.clinic,
                batch=str(batch.pk), model=job.model_version.display_name, round=job.round,
                scans=job.total - job.done,
            )
    if jobs:
        count = sum(job.total - job.done for job in jobs)
        messages.success(request, f"Re-running {count} scan{pluralize(count)} that could not be analysed.")
    else:
        messages.info(request, "Nothing to re-run: no finished analysis of this upload has failed scans.")
    return redirect("cases:batch", batch_id=batch.pk)


@login_required
@require_POST
def batch_predict(request: AuthenticatedRequest, batch_id: UUID) -> HttpResponse:
    """Analyse a batch with models it was not analysed with yet (e.g. none was active)."""
    batch = _get_batch(request.user, batch_id, roles=CAN_UPLOAD)
    used = set(batch.prediction_jobs.values_list("model_version_id", flat=True))
    missing = {arch: v for arch, v in active_versions().items() if v.pk not in used}
    if not missing:
        messages.info(request, "Every active model has already analysed this batch; nothing was queued.")
        return redirect("cases:batch", batch_id=batch.pk)
    form = PredictForm(request.POST, choices=model_choices(missing))
    if not form.is_valid():
        for error in form.errors.get("models", []):
            messages.error(request, str(error))
        return redirect("cases:batch", batch_id=batch.pk)
    with transaction.atomic():
        jobs, unavailable = queue_predictions(batch, form.cleaned_data["models"])
        _record_queued(request, batch, jobs)
    if jobs:
        messages.success(request, "Queued: " + ", ".join(job.model_version.display_name for job in jobs) + ".")
    if unavailable:
        messages.warning(request, "No active version for: " + ", ".join(unavailable) + ".")
    return redirect("cases:batch", batch_id=batch.pk)


@never_cache
@login_required
@require_GET
def batch_progress(request: AuthenticatedRequest, batch_id: UUID) -> HttpResponse:
    batch = _get_batch(request.user, batch_id)
    jobs = [_job_json(job) for job in _batch_jobs(batch)]
    return JsonResponse({"batch": str(batch.pk), "finished": all(j["finished"] for j in jobs), "jobs": jobs})


@never_cache
@login_required
@require_GET
def job_status(request: AuthenticatedRequest, job_id: UUID) -> HttpResponse:
    job = get_for(request.user, PredictionJob.objects.select_related("model_version"), public_id=job_id)
    return JsonResponse(_job_json(job))


@login_required
@require_GET
def scan_detail(request: AuthenticatedRequest, scan_id: UUID) -> HttpResponse:
    scan = _get_scan(request.user, scan_id)
    record(request, AuditEvent.Action.SCAN_VIEW, obj=scan, clinic=scan.case.clinic)
    predictions = (
        scan.predictions.select_related("model_version")
        .prefetch_related("reviews__reviewer")
        .order_by("-created_at", "-id")
    )
    return render(
        request,
        "cases/scan_detail.html",
        {
            "scan": scan, "case": scan.case, "predictions": predictions,
            "can_review": has_role(request.user, scan.case.clinic, CAN_REVIEW),
        },
    )


def _get_scan(user: User, scan_id: UUID) -> Scan:
    return get_for(user, Scan.objects.select_related("batch"), pk=scan_id)


def _stored_scan(user: User, scan_id: UUID) -> Scan:
    scan = _get_scan(user, scan_id)
    if not scan.is_accepted or not scan.file:
        raise Http404("This scan has no stored image.")
    return scan


def _file_exists(name: str | None) -> bool:
    if not name:
        return False
    try:
        return default_storage.exists(name)
    except OSError:
        return False


def _image_gone(request: HttpRequest, scan: Scan) -> HttpResponse:
    """The scan's row is there but its file is not: say so plainly (410), never a 500 or a
    page that waits forever."""
    response = render(request, "cases/image_gone.html", {"scan": scan, "case": scan.case}, status=410)
    return _private(response)


@login_required
@require_GET
def scan_image(request: AuthenticatedRequest, scan_id: UUID) -> HttpResponseBase:
    """The stored file, to members of the scan's clinic only; every view is audited."""
    scan = _stored_scan(request.user, scan_id)
    if not _file_exists(scan.file.name):
        return _image_gone(request, scan)
    record(request, AuditEvent.Action.IMAGE_VIEW, obj=scan, clinic=scan.case.clinic)
    if scan.is_dicom:  # a browser cannot show DICOM: a PNG rendering of the stored object
        response = HttpResponse(dicom_png(scan), content_type="image/png")
        response["Content-Disposition"] = f'inline; filename="scan-{scan.pk}.png"'
        return _private(response)
    content_type = CONTENT_TYPES.get(scan.format, "application/octet-stream")
    extension = mimetypes.guess_extension(content_type) or ""
    try:
        # A presigned redirect (S3), X-Accel-Redirect (nginx) or the bytes: private_files.py.
        return serve_file(scan.file, content_type, f"scan-{scan.pk}{extension}")
    except FileNotFoundError:  # removed between the check and the open
        return _image_gone(request, scan)


def render_dicom(data: bytes) -> "Image.Image":
    """The stored (de-identified) DICOM as the model sees it: 8-bit RGB, see ml.dicom."""
    from classifier.intake import intake_limits
    from ml.intake import decode_image

    return decode_image(data, intake_limits()).image


def dicom_png(scan: Scan) -> bytes:
    with scan.file.open("rb") as handle:
        image = render_dicom(handle.read())
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def thumbnail_name(scan: Scan) -> str:
    return f"thumbnails/{scan.case.clinic_id}/{scan.case_id}/{scan.sha256}-{THUMBNAIL_SIZE}.jpg"


def make_thumbnail(data: bytes) -> bytes:
    from PIL import Image, ImageOps

    from ml.intake import sniff_format

    source = render_dicom(data) if sniff_format(data) == "DICOM" else Image.open(io.BytesIO(data))
    with source as image:
        image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        image = ImageOps.exif_transpose(image)
        image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()


@login_required
@require_GET
def scan_thumbnail(request: AuthenticatedRequest, scan_id: UUID) -> HttpResponseBase:
    """A small JPEG of the scan, made once and kept in the same private storage. A scan whose
    file has gone has no thumbnail either (the copy is not shown in its place)."""
    scan = _stored_scan(request.user, scan_id)
    if not _file_exists(scan.file.name):
        return _image_gone(request, scan)
    record(request, AuditEvent.Action.IMAGE_VIEW, obj=scan, clinic=scan.case.clinic, variant="thumbnail")
    name = thumbnail_name(scan)
    if default_storage.exists(name):
        try:
            return serve_stored(default_storage, name, "image/jpeg", checked=True)
        except FileNotFoundError:
            pass  # removed since: made again below
    try:
        with scan.file.open("rb") as handle:
            data = make_thumbnail(handle.read())
    except FileNotFoundError:
        return _image_gone(request, scan)
    try:
        default_storage.save(name, ContentFile(data))
    except Exception:  # noqa: BLE001 -- a cache miss next time, nothing worse; never a truncated thumbnail
        log.warning("could not store thumbnail %s", name, exc_info=True)
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001
            pass
    return _private(HttpResponse(data, content_type="image/jpeg"))


def heatmap_name(prediction: Prediction) -> str:
    scan = prediction.scan
    return f"heatmaps/{scan.case.clinic_id}/{scan.case_id}/{prediction.public_id}.png"


@login_required
@require_GET
def case_report(request: AuthenticatedRequest, case_id: UUID) -> HttpResponse:
    """The case's printable PDF report, to members of its clinic; every export is audited."""
    from portal.cases.report import build_report

    case = get_for(request.user, Case.objects, pk=case_id)
    data = build_report(
        case, make_thumbnail=make_thumbnail, min_auc=settings.MODEL_MIN_AUC,
        min_accuracy=settings.MODEL_MIN_ACCURACY, generated_by=request.user.get_username(),
    )
    record(request, AuditEvent.Action.REPORT_EXPORT, obj=case, clinic=case.clinic, bytes=len(data))
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="case-report-{case.pk}.pdf"'
    return _private(response)


@login_required
@require_http_methods(["GET", "POST"])
def prediction_heatmap(request: AuthenticatedRequest, prediction_id: UUID) -> HttpResponseBase:
    """Grad-CAM of one prediction: where the model looked (made by the model version that
    made the prediction). The worker draws it once (``classifier.heatmaps``): while it is
    queued this page answers 202 and refreshes itself; a failed drawing says so, and a POST
    asks for it again."""
    from classifier.heatmaps import mark_ready, request_heatmap
    from classifier.models import HeatmapState

    prediction = _get_prediction(request.user, prediction_id)
    scan = prediction.scan
    if not _heatmap_shown(request.user, prediction) or not scan.file:
        raise Http404("This prediction has no heatmap.")
    if not _file_exists(scan.file.name):
        return _image_gone(request, scan)
    name = heatmap_name(prediction)
    if request.method == "POST":
        request_heatmap(prediction, name, retry=True)
        return redirect("cases:heatmap", prediction_id=prediction.public_id)
    record(request, AuditEvent.Action.IMAGE_VIEW, obj=scan, clinic=scan.case.clinic, heatmap=str(prediction.public_id))
    # A prediction never changes, nor does its heatmap: a stored file is served whatever the
    # state says (e.g. drawn before states were recorded).
    if prediction.heatmap_state == HeatmapState.READY or _file_exists(name):
        try:
            response = serve_stored(default_storage, name, "image/png")
        except FileNotFoundError:  # marked ready, but the file was removed: draw it again
            request_heatmap(prediction, name, redraw=True)
        else:
            if prediction.heatmap_state != HeatmapState.READY:
                mark_ready(prediction.pk)
            return response
    if prediction.heatmap_state != HeatmapState.FAILED:
        request_heatmap(prediction, name)
    if prediction.heatmap_state == HeatmapState.FAILED:
        response = render(request, "cases/heatmap_failed.html", {"prediction": prediction})
        return _private(response)
    response = render(request, "cases/heatmap_pending.html", {"prediction": prediction}, status=202)
    return _private(response)


@login_required
@require_GET
def heatmap_view(request: AuthenticatedRequest, prediction_id: UUID) -> HttpResponse:
    """The page that shows a prediction's heatmap beside the scan, with what the result was.
    The PNG itself comes from ``cases:heatmap`` (audited there when the browser loads it)."""
    from classifier.models import HeatmapState

    prediction = _get_prediction(request.user, prediction_id)
    scan = prediction.scan
    if not _heatmap_shown(request.user, prediction) or not scan.is_accepted or not scan.file:
        raise Http404("This prediction has no heatmap.")
    if not _file_exists(scan.file.name):
        return _image_gone(request, scan)
    context = {
        "failed": prediction.heatmap_state == HeatmapState.FAILED,
        "prediction": prediction,
        "scan": scan,
        "case": scan.case,
        "can_review": has_role(request.user, scan.case.clinic, CAN_REVIEW),
        "back": _safe_back(request),
    }
    return render(request, "cases/heatmap_view.html", context)


def _heatmap_shown(user: User, prediction: Prediction) -> bool:
    """A heatmap goes with a shown probability: none for an error, and for an image the model
    did not assess (not the brain MRI it learned from) only to those who see its probability,
    the clinic's reviewers: to anyone else it would read as where a tumor was looked for."""
    if prediction.error or prediction.probability is None:
        return False
    return prediction.assessed or has_role(user, prediction.scan.case.clinic, CAN_REVIEW)


def _get_prediction(user: User, prediction_id: UUID) -> Prediction:
    return get_for(user, Prediction.objects.select_related("model_version"), public_id=prediction_id)


def _safe_back(request: HttpRequest) -> str:
    """Where "Back" goes: the page the user came from when it is on this site."""
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.GET.get("back", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 page; a request with more files than the limit gets a plain explanation."""
    from django.core.exceptions import TooManyFilesSent

    too_many = isinstance(exception, TooManyFilesSent)
    context = {"too_many_files": too_many, "max_files": settings.UPLOAD_MAX_FILES}
    return render(request, "400.html", context, status=400)
