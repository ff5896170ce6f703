"""The one way views reach a case, batch, scan, job or prediction by its id.

Every lookup is scoped to ``clinics_for(user)``: an object of another clinic, or one that
does not exist, answers 404 alike, so ids reveal nothing. Role checks (403) come after,
through ``portal.accounts.access``.
"""

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404

from classifier.models import Prediction, PredictionJob
from portal.accounts.access import clinics_for
from portal.cases.models import Batch, Case, Scan
from portal.types import AnyUser

M = TypeVar("M", bound=Model)


def cases_for(user: AnyUser) -> QuerySet[Case]:
    return Case.objects.filter(clinic__in=clinics_for(user))


def batches_for(user: AnyUser) -> QuerySet[Batch]:
    return Batch.objects.filter(case__clinic__in=clinics_for(user))


def scans_for(user: AnyUser) -> QuerySet[Scan]:
    return Scan.objects.filter(case__clinic__in=clinics_for(user))


def jobs_for(user: AnyUser) -> QuerySet[PredictionJob]:
    return PredictionJob.objects.filter(batch__case__clinic__in=clinics_for(user))


def predictions_for(user: AnyUser) -> QuerySet[Prediction]:
    return Prediction.objects.filter(scan__case__clinic__in=clinics_for(user))


def _get(queryset: QuerySet[M], **lookup: Any) -> M:
    try:
        return queryset.get(**lookup)
    except (ObjectDoesNotExist, ValueError, ValidationError):
        raise Http404("No such object.") from None


def get_case_for(user: AnyUser, case_id: Any) -> Case:
    return _get(cases_for(user).select_related("clinic"), pk=case_id)


def get_batch_for(user: AnyUser, batch_id: Any) -> Batch:
    return _get(batches_for(user).select_related("case__clinic", "uploaded_by"), pk=batch_id)


def get_scan_for(user: AnyUser, scan_id: Any) -> Scan:
    return _get(scans_for(user).select_related("case__clinic", "batch"), pk=scan_id)


def get_job_for(user: AnyUser, job_id: Any) -> PredictionJob:
    """A prediction job by its public id."""
    return _get(
        jobs_for(user).select_related("batch__case__clinic", "model_version"), public_id=job_id
    )


def get_prediction_for(user: AnyUser, prediction_id: Any) -> Prediction:
    """A prediction by its public id."""
    return _get(
        predictions_for(user).select_related("scan__case__clinic", "model_version"),
        public_id=prediction_id,
    )
