"""Foundation: a task sent through the real Redis broker is run by the real worker process
and its effect is read back from PostgreSQL."""

import pytest

from tests.classifier.helpers import make_batch, wait_for_jobs

pytestmark = pytest.mark.worker


def test_prediction_job_runs_in_the_worker_process(transactional_db, celery_worker, clinic_a, alice, vgg16_model):
    import os

    from django.conf import settings

    from classifier.models import Prediction

    assert settings.CELERY_BROKER_URL.startswith("redis://")
    batch, jobs = make_batch(clinic_a, alice, 4)
    [job] = wait_for_jobs(jobs, worker=celery_worker)
    assert (job.status, job.done, job.failed) == ("succeeded", 4, 0)
    # The task id recorded on the job came from a message the worker received.
    assert job.worker_task_id and job.worker_task_id != str(os.getpid())
    predictions = Prediction.objects.filter(scan__batch=batch, model_version=vgg16_model)
    assert predictions.count() == 4
    assert all(p.probability is not None and p.job_id == job.pk for p in predictions)
