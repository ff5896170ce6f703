"""No shared disk between hosts: the web process (this test) and a worker process with a
different data directory share only PostgreSQL, Redis and the S3 server (SeaweedFS).
Upload, predictions, thumbnail, heatmap and model import all work, and the worker loads the
model it fetched from the bucket by SHA-256, not a file from the web host's disk."""

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.urls import reverse

from tests.classifier.helpers import make_batch, wait_for_jobs
from tests.fixtures.worker import WorkerProcess, close_other_connections, own_broker_prefix, worker_env

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def _worker_host_process(s3_server, django_db_setup, django_db_blocker):
    """A worker as on another host: its own data directory (no MEDIA_ROOT or MODEL_ROOT in
    common with this process), the same database, Redis and bucket. One for the module's
    tests (a start and a stop cost seconds)."""
    prefix = f"neuroai-test-twohost-{uuid.uuid4().hex[:8]}:"
    data_dir = Path(tempfile.mkdtemp(prefix="neuroai-worker-host-"))
    env = {**worker_env(), **s3_server.env(), "NEUROAI_DATA_DIR": str(data_dir), "CELERY_BROKER_KEY_PREFIX": prefix}
    for name in ("MEDIA_ROOT", "MODEL_ROOT", "MODEL_CACHE_DIR"):
        env.pop(name, None)
    with own_broker_prefix(prefix):
        worker = WorkerProcess(env).start()
        try:
            yield worker, data_dir
        finally:
            worker.kill()  # nothing of it is kept
            shutil.rmtree(data_dir, ignore_errors=True)
            with django_db_blocker.unblock():
                close_other_connections()


@pytest.fixture
def worker_host(_worker_host_process, s3_storage, transactional_db):
    return _worker_host_process


def _poll(client, url, accept, timeout=180):
    deadline = time.monotonic() + timeout
    response = client.get(url)
    while response.status_code not in accept and time.monotonic() < deadline:
        time.sleep(0.5)
        response = client.get(url)
    return response


def test_web_and_worker_share_only_database_redis_and_s3(
    worker_host, s3_storage, settings, client_for, clinic_a, alice
):
    from classifier.artifact_store import file_sha256
    from classifier.models import Prediction
    from classifier.registry import import_artifact
    from portal.cases.views import thumbnail_name
    from tests.fixtures.models import tiny_artifact_dir

    worker, worker_dir = worker_host
    web_model_root = Path(settings.MODEL_ROOT)
    source = web_model_root / tiny_artifact_dir("vgg16")

    # Model import on the web host: the artifact goes to the bucket, not to a shared folder.
    version = import_artifact(source, activate=True, version=f"two-hosts-{uuid.uuid4().hex[:6]}")
    assert set(version.artifact_files) >= {"model.keras", "metadata.json"}
    assert not (web_model_root / version.artifact_path).exists()
    model_key = f"models/{version.artifact_path}/model.keras"
    stored = s3_storage.client().get_object(Bucket=s3_storage.bucket, Key=model_key)["Body"].read()
    assert len(stored) > 1000

    # Upload on the web host; the worker predicts from the bucket with the fetched model.
    batch, jobs = make_batch(clinic_a, alice, 3, ref="P-TWOHOSTS", size=(96, 80))
    [job] = wait_for_jobs(jobs, worker=worker)
    assert (job.status, job.done, job.failed) == ("succeeded", 3, 0), worker.log()
    predictions = list(Prediction.objects.filter(scan__batch=batch, model_version=version))
    assert len(predictions) == 3 and all(p.probability is not None for p in predictions)
    blob = worker_dir / "model-cache" / "sha256" / version.artifact_sha256
    assert blob.is_file() and file_sha256(blob) == version.artifact_sha256
    assert not (worker_dir / "media").exists() and not (worker_dir / "models").exists()

    # Thumbnail: made by the web host from the bucket, kept in the bucket, then redirected to.
    client = client_for(alice)
    scan = batch.scans.order_by("position").first()
    thumbnail_url = reverse("cases:scan_thumbnail", kwargs={"scan_id": scan.pk})
    assert client.get(thumbnail_url).status_code == 200
    s3_storage.client().head_object(Bucket=s3_storage.bucket, Key=f"media/{thumbnail_name(scan)}")
    assert client.get(thumbnail_url).status_code == 302

    # Heatmap: drawn by the worker host (model from its cache), stored in the bucket.
    heatmap_url = reverse("cases:heatmap", kwargs={"prediction_id": predictions[0].public_id})
    first = client.get(heatmap_url)
    assert first.status_code == 202
    ready = _poll(client, heatmap_url, accept={302})
    assert ready.status_code == 302, worker.log()
    png = requests.get(ready["Location"], timeout=10)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    # Nothing of this prediction's heatmap on the web host's disk (other tests of the session
    # may have left local heatmaps of their own there).
    assert not list(Path(settings.MEDIA_ROOT).glob(f"heatmaps/**/{predictions[0].public_id}*"))


def test_training_on_the_worker_host_publishes_the_artifact_to_the_bucket(
    worker_host, s3_storage, settings, client_for, root, clinic_a, alice, bob
):
    """The worker trains from scans it reads from the bucket and uploads the new artifact;
    the web host shows its plots by fetching only the plot files."""
    from classifier.models import JobStatus
    from classifier.registry import plot_path
    from classifier.training import start_training
    from tests.classifier.test_registry_training import QUICK, _reviewed

    worker, worker_dir = worker_host
    settings.TRAINING_MIN_PER_CLASS = 8
    _reviewed(clinic_a, alice, bob, per_class=10)
    run = start_training(root, "vgg16", options=QUICK)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            break
        time.sleep(0.5)
    assert run.status == JobStatus.SUCCEEDED, f"{run.status} {run.user_error}\n{run.log}\n{worker.log()}"
    new = run.result_version
    assert {"model.keras", "metadata.json"} <= set(new.artifact_files)
    key = f"models/{new.artifact_path}/model.keras"
    s3_storage.client().head_object(Bucket=s3_storage.bucket, Key=key)
    assert not (worker_dir / "models" / new.artifact_path).exists()  # not left on the worker's disk
    roc = plot_path(new, "roc")
    assert roc is not None and roc.read_bytes().startswith(b"\x89PNG")
    assert Path(roc).is_relative_to(Path(settings.MODEL_CACHE_DIR))
    # The web host fetched the plot only, never the model.
    assert not (Path(settings.MODEL_CACHE_DIR) / "sha256" / new.artifact_sha256).exists()
