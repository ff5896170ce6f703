"""Training a new version from reviewed scans: admin start page, real worker, progress JSON."""

import time

import pytest
from django.urls import reverse

from tests.portal.reviews_data import case_with_scans, csrf_token, model_version, predict

TINY = {"epochs": 2, "fine_tune_epochs": 0, "input_size": 32, "weights": "none"}
# For the runs a real worker trains: also options the start page does not offer, one view per
# image and no outer cross-validation for the model card's figures (tests/ml/test_trust.py
# trains with both), so that the worker trains in seconds instead of a minute.
QUICK = {**TINY, "views": 1, "cv_repeats": 0}


def _reviewed(clinic, clinician, reviewer, per_class):
    from classifier.models import Review

    _, batch, scans = case_with_scans(clinic, clinician, 2 * per_class)
    preds = predict(batch, scans, model_version("vgg16", "v1"), [0.7] * len(scans))
    for index, p in enumerate(preds):
        label = "tumor" if index % 2 else "no_tumor"
        Review.objects.create(prediction=p, scan=p.scan, reviewer=reviewer, label=label,
                              verdict="confirmed" if label == p.label else "corrected")


def _start(client, **fields):
    url = reverse("admin:classifier_trainingrun_start")
    token = csrf_token(client.get(url))
    return client.post(url, {"csrfmiddlewaretoken": token, "architecture": "vgg16", **TINY, **fields})


def test_training_needs_enough_reviewed_scans_per_class(client_for, root, clinic_a, alice, bob, settings):
    from classifier.models import TrainingRun

    settings.TRAINING_MIN_PER_CLASS = 5
    _reviewed(clinic_a, alice, bob, per_class=3)
    response = _start(client_for(root))
    assert response.status_code == 200
    assert "each class needs at least 5 (tumor: 3 of 5; no tumor: 3 of 5)" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_training_start_is_for_superusers(client_for, carol, bob):
    url = reverse("admin:classifier_trainingrun_start")
    assert client_for(carol).get(url).status_code == 302  # not staff: admin login
    assert client_for(bob).get(url).status_code == 302


def test_the_start_page_queues_a_run_with_its_options_and_audits_it(
    client_for, root, clinic_a, alice, bob, settings, django_capture_on_commit_callbacks
):
    from classifier.models import TrainingRun
    from portal.audit.models import AuditEvent

    settings.TRAINING_MIN_PER_CLASS = 8
    _reviewed(clinic_a, alice, bob, per_class=10)
    c = client_for(root)
    with django_capture_on_commit_callbacks() as queued:
        response = _start(c)
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert len(queued) == 1  # the run's message, sent once the run is committed
    run = TrainingRun.objects.get()
    assert response["Location"] == reverse("admin:classifier_trainingrun_change", args=[run.pk])
    assert run.options["min_per_class"] == 8 and run.options["weights"] == "none"
    assert (run.options["epochs"], run.options["input_size"], run.options["fine_tune_epochs"]) == (2, 32, 0)
    assert AuditEvent.objects.filter(action="training_start", object_id=str(run.pk)).exists()
    page = c.get(response["Location"]).content.decode()
    assert 'id="training-progress"' in page


@pytest.mark.worker
def test_training_run_produces_an_inactive_version(transactional_db, celery_worker, client_for, root, clinic_a, alice,
                                                   bob, settings):
    """The worker trains a run queued as the start page queues it (start_training), reports
    progress on the status page, and imports the artifact as an inactive version."""
    from classifier.models import JobStatus, ModelVersion
    from classifier.training import start_training
    from portal.audit.models import AuditEvent

    settings.TRAINING_MIN_PER_CLASS = 8
    _reviewed(clinic_a, alice, bob, per_class=10)
    c = client_for(root)
    run = start_training(root, "vgg16", options=QUICK)

    status_url = reverse("admin:classifier_trainingrun_status", args=[run.pk])
    seen, stages = [], []
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        status = c.get(status_url).json()
        seen.append(status["done"])
        if status["stage"] and status["stage"] not in stages:
            stages.append(status["stage"])
        if status["finished"]:
            break
        time.sleep(0.2)
    assert status["finished"], f"not finished: {status}\n{celery_worker.log()}"
    assert status["status"] == JobStatus.SUCCEEDED, f"{status}\n{celery_worker.log()}"
    assert status["percent"] == 100 and status["done"] == status["total"] == 100
    assert status["stage"] == "done" and status["fraction"] == 1.0
    assert seen == sorted(seen)  # progress only moves forward
    assert len(stages) >= 2, stages  # ml's stages reach the page as data, not as log text
    run.refresh_from_db()
    assert run.stage == "done" and "[head]" in run.log
    new = run.result_version
    assert new is not None and not new.is_active and new.architecture == "vgg16"
    assert ModelVersion.objects.get(version="v1").is_active  # the active version is unchanged
    assert new.metadata["input_size"] == 32 and "validation" in new.metrics
    trained_with = new.metadata["extra"]["train_config"]
    assert (trained_with["views"], trained_with["cv_repeats"], trained_with["head_epochs"]) == (1, 0, 2)
    assert "artifact written" in run.log
    from classifier.registry import plot_path

    assert plot_path(new, "roc") is not None and plot_path(new, "confusion") is not None
    assert AuditEvent.objects.filter(action="model_import", object_id=str(new.pk)).exists()


def test_a_redelivered_training_message_fails_the_run_instead_of_looping(db, root):
    """Training cannot resume: the same message again means its worker died mid-run."""
    from classifier.models import JobStatus, TrainingRun
    from classifier.training import _claim

    run = TrainingRun.objects.create(architecture="vgg16", requested_by=root, options=TINY)
    assert _claim(run.pk, "task-1").status == JobStatus.RUNNING
    assert _claim(run.pk, "task-2") is None  # a duplicate message: leave the run alone
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING
    assert _claim(run.pk, "task-1") is None  # redelivered after the worker died
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "worker stopped during training" in run.user_error


def test_a_training_run_whose_worker_stopped_beating_is_failed_by_the_sweeper(db, root, settings):
    from datetime import timedelta

    from django.utils import timezone

    from classifier.models import JobStatus, TrainingRun
    from classifier.sweeper import sweep
    from classifier.training import _claim

    run = TrainingRun.objects.create(architecture="vgg16", requested_by=root, options=TINY)
    _claim(run.pk, "task-1")
    assert sweep() == 0  # beating
    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS + 1)
    )
    assert sweep() == 1
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "worker stopped during training" in run.user_error
    assert "No heartbeat since" in run.admin_error
