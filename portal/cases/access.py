"""The one way views reach a case, batch, scan, job or prediction by its id.

Every lookup is scoped to ``clinics_for(user)``: an object of another clinic, or one that
does not exist, answers 404 alike, so ids reveal nothing. Role checks (403) come after,
through ``portal.accounts.access``.
"""

from django.core.exceptions import ValidationError
from django.http import Http404

from classifier.models import Prediction, PredictionJob
from portal.accounts.access import clinics_for
from portal.cases.models import Batch, Case, Scan


def cases_for(user):
    return Case.objects.filter(clinic__in=clinics_for(user))


def batches_for(user):
    return Batch.objects.filter(case__clinic__in=clinics_for(user))


def scans_for(user):
    return Scan.objects.filter(case__clinic__in=clinics_for(user))


def jobs_for(user):
    return PredictionJob.objects.filter(batch__case__clinic__in=clinics_for(user))


def predictions_for(user):
    return Prediction.objects.filter(scan__case__clinic__in=clinics_for(user))


def _get(queryset, **lookup):
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, ValidationError):
        raise Http404("No such object.") from None


def get_case_for(user, case_id):
    return _get(cases_for(user).select_related("clinic"), pk=case_id)


def get_batch_for(user, batch_id):
    return _get(batches_for(user).select_related("case__clinic", "uploaded_by"), pk=batch_id)


def get_scan_for(user, scan_id):
    return _get(scans_for(user).select_related("case__clinic", "batch"), pk=scan_id)


def get_job_for(user, job_id):
    """A prediction job by its public id."""
    return _get(
        jobs_for(user).select_related("batch__case__clinic", "model_version"), public_id=job_id
    )


def get_prediction_for(user, prediction_id):
    """A prediction by its public id."""
    return _get(
        predictions_for(user).select_related("scan__case__clinic", "model_version"),
        public_id=prediction_id,
    )
