"""CSV exports of prediction history with reviews, streamed row by row.

One row per (prediction, review); a prediction with no review has one row with empty
review columns. The rows come from a server-side cursor (``.iterator``), so the export of
a clinic with 100,000 predictions never holds them all in memory.
"""

import csv
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from classifier.models import NOT_ASSESSED_TEXT, Prediction
from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW, CAN_UPLOAD, get_for, has_role
from portal.accounts.models import Clinic
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.cases.models import Case
from portal.types import AuthenticatedRequest

CHUNK_SIZE = 2000

# (CSV header, queryset field)
COLUMNS = [
    ("prediction_id", "public_id"),
    ("clinic", "scan__case__clinic__slug"),
    ("case_id", "scan__case_id"),
    ("patient_ref", "scan__case__patient_ref"),
    ("scan_id", "scan_id"),
    ("scan_name", "scan__original_name"),
    ("scan_sha256", "scan__sha256"),
    ("model_architecture", "model_version__architecture"),
    ("model_version", "model_version__version"),
    ("probability_tumor", "probability"),
    ("threshold", "threshold"),
    ("predicted_label", "label"),
    ("prediction_error", "error"),
    ("predicted_at", "created_at"),
    ("review_id", "reviews__id"),
    ("reviewer", "reviews__reviewer__username"),
    ("verdict", "reviews__verdict"),
    ("reviewed_label", "reviews__label"),
    ("review_note", "reviews__note"),
    ("reviewed_at", "reviews__created_at"),
    # Added last, so that existing spreadsheets keep their column positions.
    ("assessed", "assessed"),
    ("ood_score", "ood_score"),
]
HEADER = [name for name, _ in COLUMNS]
FIELDS = [field for _, field in COLUMNS]


def export_queryset(**filters: Any) -> QuerySet[Prediction, tuple[Any, ...]]:
    return (
        Prediction.objects.filter(**filters)
        .order_by("created_at", "id", "reviews__created_at", "reviews__id")
        .values_list(*FIELDS)
    )


def cell(value: Any) -> Any:
    """A CSV cell: ISO timestamps, empty for NULL, and text that a spreadsheet could take
    for a formula (=, +, -, @, tab, CR) prefixed with a quote."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


_LABEL = HEADER.index("predicted_label")
_PROBABILITY = HEADER.index("probability_tumor")
_ASSESSED = HEADER.index("assessed")


def stream_rows(queryset: QuerySet[Prediction, tuple[Any, ...]], reviewer: bool) -> Iterator[str]:
    """``reviewer``: whether the reader reviews in the clinic, and so sees the probability of
    an image the model did not assess (as on the pages)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for row in queryset.iterator(chunk_size=CHUNK_SIZE):
        values = list(row)
        if values[_ASSESSED] is False:  # never an empty label that reads like "no finding"
            values[_LABEL] = NOT_ASSESSED_TEXT
            if not reviewer:
                values[_PROBABILITY] = None
        yield writer.writerow([cell(value) for value in values])


def csv_response(queryset: QuerySet[Prediction, tuple[Any, ...]], filename: str,
                 reviewer: bool) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream_rows(queryset, reviewer), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%d-%H%M%S")


@login_required
@require_GET
def export_case(request: AuthenticatedRequest, case_id: UUID) -> StreamingHttpResponse:
    """Any member of the case's clinic may export the case they can already see."""
    case = get_for(request.user, Case.objects, pk=case_id, roles=CAN_UPLOAD)
    record(request, AuditEvent.Action.EXPORT, obj=case, clinic=case.clinic, scope="case")
    return csv_response(export_queryset(scan__case=case), f"case-{case.pk}-{_stamp()}.csv",
                        reviewer=has_role(request.user, case.clinic, CAN_REVIEW))


@login_required
@require_GET
def export_clinic(request: AuthenticatedRequest, clinic_id: UUID) -> StreamingHttpResponse:
    """A whole clinic's history: clinic admins (and superusers) only."""
    clinic = get_for(request.user, Clinic.objects, pk=clinic_id, roles=CAN_ADMINISTER)
    record(request, AuditEvent.Action.EXPORT, obj=clinic, clinic=clinic, scope="clinic")
    return csv_response(
        export_queryset(scan__case__clinic=clinic), f"clinic-{clinic.slug}-{_stamp()}.csv", reviewer=True
    )
