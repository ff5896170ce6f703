"""A chunk's storage reads and database writes: results stored with a fixed number of queries
per inference batch (never per scan) and still exactly once; scans read ahead in the storage
pool, at most one batch ahead; scans read from the S3 server with one GET, a missing one
failing alone."""

from pathlib import Path

import pytest

from tests.classifier.helpers import make_batch, plan_here, run_job_here

pytestmark = pytest.mark.django_db


def _running_chunk(clinic, user, n, settings):
    from classifier.prediction_run import claim

    settings.JOB_CHUNK_SIZE = n
    batch, [job] = make_batch(clinic, user, n)
    [chunk] = plan_here(job)
    chunk = claim(chunk.pk, "task-1")
    scans = list(batch.scans_for_prediction().order_by("position"))
    return job, chunk, scans


def test_a_batch_of_results_is_stored_with_a_few_queries_and_exactly_once(
    clinic_a, alice, vgg16_model, settings, django_assert_max_num_queries
):
    from classifier.models import Prediction
    from classifier.prediction_run import _save
    from ml.engine import ImagePrediction

    job, chunk, scans = _running_chunk(clinic_a, alice, 12, settings)
    results = [ImagePrediction(0.2 + i / 40, "no_tumor") for i in range(10)]
    results += [ImagePrediction(None, None, "truncated or corrupt")] * 2
    # The results already stored, one insert, in_flight cleared, the job's current round and
    # status, one count, the job's counts, a savepoint and its release; on first use, the job's
    # model version and batch.
    with django_assert_max_num_queries(10):
        _save(chunk, scans, results)
    assert Prediction.objects.filter(job=job, error="").count() == 10
    assert Prediction.objects.filter(job=job).exclude(error="").count() == 2
    job.refresh_from_db()
    assert (job.done, job.failed) == (10, 2)
    # Stored again (a redelivered message, a concurrent worker): nothing doubles, a scan with
    # a result gets no failure record, a failure is kept once per round.
    again = [ImagePrediction(None, None, "model error")] * 10 + [ImagePrediction(0.9, "tumor")] * 2
    with django_assert_max_num_queries(8):
        _save(chunk, scans, again)
    assert Prediction.objects.filter(job=job).count() == 14
    assert Prediction.objects.filter(job=job, error="").count() == 12
    assert not Prediction.objects.filter(scan__in=scans[:10], error="model error").exists()
    job.refresh_from_db()
    assert (job.done, job.failed) == (12, 2)


def test_a_whole_chunk_costs_queries_per_inference_batch_not_per_scan(
    clinic_a, alice, vgg16_model, settings, django_assert_max_num_queries
):
    from classifier.models import Prediction
    from classifier.tasks import run_prediction_chunk

    settings.INFERENCE_BATCH_SIZE = 8
    settings.JOB_CHUNK_SIZE = 16
    _, [job] = make_batch(clinic_a, alice, 80)  # inference batches of 8 (a tenth of the job)
    [chunk, *_] = plan_here(job)
    # Claim, plan the chunk, load its scans, close it (~16), and per inference batch: check it
    # is still ours, mark it in flight, store it (9). Before: about 100, five queries per scan.
    with django_assert_max_num_queries(36):
        run_prediction_chunk.apply(args=[chunk.pk], task_id="task-1")
    assert Prediction.objects.filter(scan_id__in=chunk.scan_ids, error="").count() == 16


def test_the_next_inference_batch_is_read_while_the_current_one_is_taken(clinic_a, alice, vgg16_model, settings):
    from classifier.prediction_run import ScanReader

    _, _, scans = _running_chunk(clinic_a, alice, 7, settings)
    batches = [scans[0:3], scans[3:6], scans[6:7]]
    with ScanReader(batches) as reader:
        first = reader.take(0)
        assert set(reader.reads) == {1}  # only the next batch is ahead
        assert first == [Path(scan.file.path).read_bytes() for scan in batches[0]]
        reader.take(1)
        assert set(reader.reads) == {2}
    assert reader.reads == {}  # what was ahead is dropped when the chunk stops


def test_scans_are_read_from_the_s3_server_and_a_missing_one_fails_alone(s3_storage, clinic_a, alice, vgg16_model):
    from classifier.models import Prediction
    from classifier.prediction_run import UNREADABLE
    from classifier.storage_io import read_bytes

    batch, [job] = make_batch(clinic_a, alice, 6)
    scans = list(batch.scans.order_by("position"))
    with scans[0].file.open("rb") as handle:
        assert read_bytes(scans[0].file) == handle.read()
    s3_storage.client().delete_object(Bucket=s3_storage.bucket, Key=f"media/{scans[3].file.name}")
    with pytest.raises(FileNotFoundError):
        read_bytes(scans[3].file)
    run_job_here(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("partial", 5, 1)
    assert Prediction.objects.get(scan=scans[3]).error == UNREADABLE


def test_a_read_the_s3_server_refuses_is_not_taken_for_a_missing_file(
    s3_server, clinic_a, alice, vgg16_model, settings
):
    from botocore.exceptions import ClientError

    from classifier.storage_io import read_bytes
    from portal.storage_config import build_storages

    def storages(**kwargs):
        return build_storages(media_root=settings.MEDIA_ROOT, model_root=settings.MODEL_ROOT, debug=False,
                              s3=s3_server.settings_kwargs(**kwargs))

    settings.STORAGES = storages()
    batch, _ = make_batch(clinic_a, alice, 1)
    scan = batch.scans.get()
    settings.STORAGES = storages(secret_key="not-the-secret")  # the same bucket, a wrong secret
    with pytest.raises(ClientError) as refused:  # the chunk retries; the scan is not blamed
        read_bytes(scan.file)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
