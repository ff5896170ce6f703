"""Through the real broker and worker: duplicated task messages never double a result; a
stored file that cannot be decoded gets its own error while the rest of the job succeeds."""

import pytest

from tests.classifier.helpers import make_batch, wait_for_jobs, wait_until_idle

pytestmark = pytest.mark.worker


def test_duplicated_task_messages_do_not_double_predictions(
    transactional_db, celery_worker, clinic_a, alice, vgg16_model
):
    from classifier.models import Prediction
    from classifier.tasks import run_prediction_job

    batch, [job] = make_batch(clinic_a, alice, 6)
    for _ in range(3):  # the same job sent three more times
        run_prediction_job.delay(job.pk)
    [job] = wait_for_jobs([job], worker=celery_worker)
    assert (job.status, job.done) == ("succeeded", 6)
    wait_until_idle()  # the duplicates were consumed too
    assert Prediction.objects.filter(scan__batch=batch).count() == 6
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("succeeded", 6, 0)


def test_one_bad_stored_file_gets_its_own_error(transactional_db, celery_worker, clinic_a, alice, vgg16_model):
    from classifier.models import Prediction

    batch, [job] = make_batch(clinic_a, alice, 6, bad=[4])
    [job] = wait_for_jobs([job], worker=celery_worker)
    assert (job.status, job.done, job.failed) == ("partial", 5, 1)
    assert job.user_error == "1 of 6 scans could not be analysed."
    bad = Prediction.objects.get(scan__batch=batch, scan__position=4)
    assert bad.error and bad.probability is None
    assert Prediction.objects.filter(scan__batch=batch, error="").count() == 5
