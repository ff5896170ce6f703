"""Training a new model version from reviewed scans, in the background.

The labels are the reviewers': for each accepted scan, the label of its latest review
(confirmed or corrected). The data set is written to a temporary folder as a CSV of
``path,label`` (the format ``ml`` reads), ml trains in-process with a progress callback,
and the artifact is imported as an inactive version.
"""

import csv
import logging
import os
import shutil
import tempfile
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone

from classifier import claims
from classifier.heartbeat import heartbeat
from classifier.models import JobStatus, Label, Review, TrainingRun
from portal.cases.models import Scan

if TYPE_CHECKING:
    from ml.progress import ProgressEvent
    from ml.train import TrainConfig

log = logging.getLogger(__name__)

HED_BACKBONE = "vgg16-hed"  # the option value for the local HED-derived VGG16 backbone
DEFAULT_OPTIONS = {"input_size": 160, "weights": "imagenet"}


class TrainingError(Exception):
    """Training cannot start or failed; str() is fit to show to an admin."""


def min_per_class() -> int:
    return int(getattr(settings, "TRAINING_MIN_PER_CLASS", 20))


def reviewed_scans(clinic_ids: list[str] | None = None) -> QuerySet[Any]:
    """Accepted scans (of the clinics ``clinic_ids``, else of all) with at least one review,
    annotated with ``reviewed_label``: the label of the scan's latest review. (Typed as rows of
    Any: django-stubs cannot carry an annotation through ``ScanQuerySet``.)"""
    latest = Review.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-id")
    scans = Scan.objects.accepted()
    if clinic_ids:
        scans = scans.filter(case__clinic_id__in=clinic_ids)
    scans = scans.annotate(reviewed_label=Subquery(latest.values("label")[:1])).filter(reviewed_label__isnull=False)
    return scans.order_by("created_at", "pk")


def reviewed_counts(clinic_ids: list[str] | None = None) -> dict[str, int]:
    counts = {label: 0 for label in Label.values}
    for label in reviewed_scans(clinic_ids).values_list("reviewed_label", flat=True):
        counts[label] += 1
    return counts


def check_enough(counts: dict[str, int], minimum: int) -> None:
    short = [
        f"{Label(label).label.lower()}: {counts.get(label, 0)} of {minimum}"
        for label in Label.values
        if counts.get(label, 0) < minimum
    ]
    if short:
        raise TrainingError(
            f"Not enough reviewed scans to train: each class needs at least {minimum} "
            f"({'; '.join(short)})."
        )


def start_training(user: User, architecture: str, options: dict[str, Any] | None = None,
                   clinics: Iterable[Any] | None = None, request: HttpRequest | None = None) -> TrainingRun:
    """Check there is enough reviewed data, create the run and queue it after commit."""
    from classifier.signals import announce

    clinic_ids = [str(c.pk) for c in clinics] if clinics else None
    minimum = min_per_class()
    check_enough(reviewed_counts(clinic_ids), minimum)
    merged = {**DEFAULT_OPTIONS, **(options or {}), "clinics": clinic_ids, "min_per_class": minimum}
    with transaction.atomic():
        run = TrainingRun.objects.create(
            architecture=architecture,
            requested_by=user,
            options=merged,
            total=TOTAL_STEPS,
        )
        announce("training_start", request=request, obj=run, actor=user, architecture=architecture, options=merged)
        enqueue_training(run)
    return run


def enqueue_training(run: TrainingRun) -> None:
    from classifier.tasks import run_training

    transaction.on_commit(lambda: run_training.delay(run.pk))


# --- The worker side ------------------------------------------------------------------


def _claim(run_id: int, task_id: str | None, worker: str = "") -> TrainingRun | None:
    """Lock the run and move it to running; None when it is not ours to run.

    Training is not resumable. The same message delivered again for a running run means
    its worker died mid-training (acks_late): the run is failed rather than restarted, so
    that a run that kills its worker (out of memory, say) cannot loop. Another message for
    a running run (a duplicate) does nothing.
    """
    with transaction.atomic():
        run, how = claims.claim(TrainingRun, run_id, task_id)
        if run is None:
            log.warning("training run %s does not exist", run_id)
            return None
        if how == claims.NEW:
            run.worker, run.heartbeat_at = worker, timezone.now()
            run.save(update_fields=["worker_task_id", "worker", "heartbeat_at"])
            run.set_status(JobStatus.RUNNING)
            return run
        if how == claims.REDELIVERED:
            fail_lost_run(run, f"Task {task_id} was delivered again while the run was running.")
        return None


def fail_lost_run(run: TrainingRun, admin_error: str) -> None:
    """A locked running run whose worker died: training is not resumable, so it fails (a run
    that kills its worker, out of memory say, must not loop)."""
    run.set_status(
        JobStatus.FAILED,
        user_error="The worker stopped during training (out of memory or restarted); start a new run.",
        admin_error=admin_error,
    )


def _append_log(run: TrainingRun, line: str) -> None:
    run.log = (run.log + f"{timezone.now():%H:%M:%S} {line}\n")[-20000:]
    TrainingRun.objects.filter(pk=run.pk).update(log=run.log, progress_at=timezone.now())


def export_dataset(run: TrainingRun, folder: str | os.PathLike[str]) -> tuple[Path, dict[str, int]]:
    """Copy the reviewed scans into ``folder`` and write ``labels.csv`` (path,label)."""
    from django.core.files.storage import default_storage

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    counts = {label: 0 for label in Label.values}
    rows: list[tuple[str, str]] = []
    for scan in reviewed_scans(run.options.get("clinics")).iterator(chunk_size=500):
        suffix = Path(scan.file.name).suffix or ".img"
        target = folder / "images" / f"{scan.pk}{suffix}"
        try:
            with default_storage.open(scan.file.name, "rb") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
        except OSError as exc:
            log.warning("training run %s: scan %s unreadable: %s", run.pk, scan.pk, exc)
            continue
        rows.append((f"images/{target.name}", scan.reviewed_label))
        counts[scan.reviewed_label] += 1
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return folder / "labels.csv", counts


def execute(run_id: int, task_id: str | None = None, worker: str = "") -> TrainingRun | None:
    """Run one training run to the end; returns the run (or None when not ours)."""
    run = _claim(run_id, task_id, worker)
    if run is None:
        return None
    with heartbeat(TrainingRun, run.pk, task_id):
        return _train(run, run_id)


def _train(run: TrainingRun, run_id: int) -> TrainingRun:
    workdir = Path(tempfile.mkdtemp(prefix=f"training-{run.pk}-"))
    try:
        csv_path, counts = export_dataset(run, workdir / "data")
        _append_log(run, f"exported {counts[Label.TUMOR]} tumor and {counts[Label.NO_TUMOR]} no-tumor scans")
        check_enough(counts, int(run.options.get("min_per_class", min_per_class())))
        artifact = train_artifact(run, csv_path, workdir / "artifact")
        TrainingRun.objects.filter(pk=run.pk).update(stage="import")
        from classifier.registry import import_artifact

        version = import_artifact(
            artifact,
            user=run.requested_by,
            activate=False,
            version=f"trained-{run.pk}-{timezone.now():%Y%m%d%H%M%S}",
        )
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run.pk)
            run.result_version = version
            run.done = run.total
            run.stage, run.fraction = "done", 1.0
            run.save(update_fields=["result_version", "done", "stage", "fraction"])
            _append_log(run, f"imported {version} (inactive)")
            run.set_status(JobStatus.SUCCEEDED)
        return run
    except TrainingError as exc:
        _fail(run.pk, str(exc), traceback.format_exc())
    except SoftTimeLimitExceeded:
        _fail(
            run.pk,
            f"Training took longer than the {settings.CELERY_TASK_SOFT_TIME_LIMIT} s limit and was "
            "stopped; try a smaller input size or fewer epochs.",
            traceback.format_exc(),
        )
    except Exception as exc:  # noqa: BLE001 - the run records every failure
        log.exception("training run %s failed", run.pk)
        _fail(run.pk, f"Training failed: {type(exc).__name__}: {str(exc)[:200]}", traceback.format_exc())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return TrainingRun.objects.get(pk=run_id)


def _fail(run_id: int, user_error: str, admin_error: str) -> None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            run.set_status(JobStatus.FAILED, user_error=user_error, admin_error=admin_error)


# Progress: ml reports structured events (stage, fraction 0..1, message); the run stores the
# stage and fraction, and done/total (the progress bar) move in hundredths: training takes
# TRAIN_SHARE of the bar, importing the artifact into the registry the rest.
TOTAL_STEPS = 100
TRAIN_SHARE = 95
TRAIN_OPTIONS = {"weights", "input_size", "crop", "seed", "views", "head_epochs", "head_patience",
                 "batch_size", "fine_tune_epochs", "fine_tune_blocks", "threads", "test_fraction",
                 "val_fraction", "intensity", "threshold_method", "c_choice", "cv_repeats", "robustness",
                 "ood_keep"}


def train_config(run: TrainingRun) -> "TrainConfig":
    """ml.train.TrainConfig from the run's options (``epochs`` is the head's epochs)."""
    from ml.train import TrainConfig

    options = dict(run.options)
    values = {k: v for k, v in options.items() if k in TRAIN_OPTIONS}
    if values.get("weights") == HED_BACKBONE:  # the shipped model's local backbone, verified on use
        from ml.backbones import ensure_vgg16_hed

        values["weights"] = str(ensure_vgg16_hed(settings.BACKBONE_CACHE_DIR))
    if "epochs" in options:
        values.setdefault("head_epochs", int(options["epochs"]))
    return TrainConfig(arch=run.architecture, extra={"training_run": run.pk},
                       source=f"reviewed scans of this portal (training run {run.pk})", **values)


class _Progress:
    """ml's progress callback (``ml.progress.ProgressEvent``): stores stage and fraction,
    moves done/total and appends the message to the run's log."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run

    def __call__(self, event: "ProgressEvent") -> None:
        done = min(TRAIN_SHARE, int(event.fraction * TRAIN_SHARE))
        self.run.stage, self.run.fraction = event.stage[:40], max(self.run.fraction, float(event.fraction))
        self.run.done = max(self.run.done, done)
        TrainingRun.objects.filter(pk=self.run.pk).update(
            stage=self.run.stage, fraction=self.run.fraction, done=self.run.done
        )
        _append_log(self.run, f"[{event.stage}] {event.message}")


def train_artifact(run: TrainingRun, csv_path: str | os.PathLike[str], out_dir: Path) -> Path:
    """Train with ml in-process; returns the artifact directory."""
    from ml.train import train

    TrainingRun.objects.filter(pk=run.pk).update(total=TOTAL_STEPS, done=0, stage="", fraction=0.0)
    run.total, run.done, run.stage, run.fraction = TOTAL_STEPS, 0, "", 0.0
    try:
        train(train_config(run), str(csv_path), str(out_dir), progress=_Progress(run))
    except ValueError as exc:  # ml's "data set too small ..." and similar
        raise TrainingError(f"Training could not run: {exc}") from exc
    return out_dir
