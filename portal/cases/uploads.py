"""Batch upload: judge every file by its content, store the good ones privately, record all.

Phase one (no transaction) reads and decodes each file once, outside any database lock.
Phase two, in one transaction with the case row locked (two uploads to one case cannot
race on the duplicate check), creates the batch, stores accepted files through Django's
storage API under a path made from their SHA-256, creates every Scan row (rejected and
duplicate files too, each with its reason) and the prediction jobs. The jobs' tasks are
sent only after the commit (``transaction.on_commit`` in ``classifier.jobs``). If phase
two fails, the files it stored are removed and nothing is half-recorded; a write that
fails half-way (disk full) is removed too, so storage never keeps a truncated scan.

The files are written ``STORAGE_IO_THREADS`` at a time (``classifier.storage_io.pool``), each
through the same storage backend as before; the database work stays on the request's thread.
A file whose write fails is recorded as rejected with its reason while the others are kept;
when no file of the upload could be written (the storage is down or full), the upload is
refused whole with ``StorageUnavailable`` (an OSError) and nothing is recorded.

What is stored is the file with its metadata removed (``ml.metadata``: no EXIF but the
orientation, no XMP, ICC, comments or PNG text; the image data byte for byte, so the
pixels are the original's). ``Scan.sha256`` and ``size_bytes`` stay those of the file as
uploaded, so a second upload of the same file is still recognised as a duplicate.
"""

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from classifier.intake import intake_limits
from classifier.jobs import NoActiveModel, create_prediction_jobs
from classifier.models import ModelVersion, PredictionJob
from classifier.models.model_version import Architecture
from classifier.storage_io import pool
from ml.intake import IntakeLimits
from portal.cases.models import Batch, Case, Scan

log = logging.getLogger(__name__)

NOT_STORED = "The file could not be stored (a storage error on the server); upload it again."


class StorageUnavailable(OSError):
    """No accepted file of an upload could be written: the storage is down or full."""


@dataclass
class CheckedFile:
    upload: UploadedFile | None  # None for a file taken out of a DICOM archive (see content)
    position: int
    name: str
    size: int
    status: str = Scan.Status.ACCEPTED
    reason: str = ""
    sha256: str = ""
    format: str = ""
    orientation: int = 1  # the one the decode applied; the stored copy keeps it (ml.metadata)
    width: int | None = None
    height: int | None = None
    content: bytes | None = None  # what to store instead of the upload (a de-identified DICOM)
    patient_hash: str = ""
    series_description: str = ""
    plane: str = ""
    slice_position: str = ""


@dataclass
class UploadResult:
    batch: Batch
    jobs: list[PredictionJob] = field(default_factory=list)
    missing_models: list[str] = field(default_factory=list)


def display_name(upload: UploadedFile) -> str:
    """The client's file name, for display only (never a storage path)."""
    name = os.path.basename((upload.name or "").replace("\\", "/"))
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name or "unnamed")[:255]


def _megabytes(size: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return filesizeformat(size).replace("\xa0", " ")


def check_file(upload: UploadedFile, position: int, limits: IntakeLimits) -> CheckedFile:
    """Read one uploaded file, hash it and decode it; return its verdict."""
    from ml.intake import ImageRejected, decode_image
    from ml.metadata import MetadataError, strip_metadata

    checked = CheckedFile(upload=upload, position=position, name=display_name(upload), size=upload.size or 0)
    if checked.size > limits.max_bytes:
        checked.status = Scan.Status.REJECTED
        checked.reason = (
            f"The file is {_megabytes(checked.size)}; the limit is {_megabytes(limits.max_bytes)}."
        )
        return checked
    upload.seek(0)
    data = upload.read()
    checked.size = len(data)
    checked.sha256 = hashlib.sha256(data).hexdigest()
    try:
        decoded = decode_image(data, limits)
    except ImageRejected as exc:
        checked.status = Scan.Status.REJECTED
        checked.reason = f"Not accepted: {exc.reason}."[:300]
        return checked
    checked.format, checked.width, checked.height = decoded.format, decoded.width, decoded.height
    checked.orientation = decoded.orientation
    decoded.image.close()
    try:  # the metadata is removed when the file is stored; a structure it cannot walk is refused now
        strip_metadata(data, checked.format, checked.orientation)
    except MetadataError:
        checked.status = Scan.Status.REJECTED
        checked.reason = "Not accepted: the image's structure is damaged."
    return checked


def check_files(uploads: Iterable[UploadedFile], case: Case) -> list[CheckedFile]:
    """Every scan in ``uploads`` (a DICOM zip gives many), numbered in order; an upload
    mixing two patients, or expanding past the limits of one upload, raises ``UploadRefused``
    (see ``portal.cases.dicom_intake``)."""
    from portal.cases.dicom_intake import DicomIntake, UploadBudget, peek, refuse_mixed_patients, wants_expansion

    limits = intake_limits()
    budget = UploadBudget()
    dicom = DicomIntake(case.clinic_id, lambda **kw: CheckedFile(upload=None, position=0, **kw), budget)
    checked: list[CheckedFile] = []
    for upload in uploads:
        budget.take_scans(1)  # a zip or a multi-frame object adds the rest of its scans
        if wants_expansion(peek(upload)):
            checked += dicom.expand(upload, display_name(upload), limits)
        else:
            checked.append(check_file(upload, 0, limits))
    for position, item in enumerate(checked, 1):
        item.position = position
    refuse_mixed_patients(checked)
    return checked


def active_versions() -> dict[str, ModelVersion]:
    """The active version of each architecture that has one, in display order."""
    versions = ModelVersion.objects.filter(is_active=True)
    by_arch = {version.architecture: version for version in versions}
    return {arch: by_arch[arch] for arch in Architecture.values if arch in by_arch}


def ingest(case: Case, user: User, uploads: Iterable[UploadedFile], architectures: Iterable[str]) -> UploadResult:
    """Record one upload of ``uploads`` to ``case`` and queue predictions; see module doc."""
    checked = check_files(uploads, case)
    stored: list[str] = []
    try:
        with transaction.atomic():
            return _record(case, user, checked, architectures, stored)
    except BaseException:
        for name in stored:
            try:
                default_storage.delete(name)
            except Exception:  # the original error matters more than a leftover file
                log.exception("could not remove %s after a failed upload", name)
        raise


def _record(case: Case, user: User, checked: list[CheckedFile], architectures: Iterable[str],
            stored: list[str]) -> UploadResult:
    from portal.cases.dicom_intake import match_case_patient

    Case.objects.select_for_update().only("pk").get(pk=case.pk)
    match_case_patient(case, checked)
    shas = {item.sha256 for item in checked if item.status == Scan.Status.ACCEPTED}
    existing = {
        scan.sha256: scan
        for scan in Scan.objects.filter(case=case, status=Scan.Status.ACCEPTED, sha256__in=shas)
    }
    batch = Batch.objects.create(case=case, uploaded_by=user, files_received=len(checked))
    scans: list[Scan] = []
    seen: dict[str, Scan] = {}
    to_store: list[tuple[Scan, CheckedFile]] = []
    for item in checked:
        scan = Scan(
            case=case, batch=batch, position=item.position, original_name=item.name,
            status=item.status, rejection_reason=item.reason, sha256=item.sha256,
            size_bytes=item.size, format=item.format, width=item.width, height=item.height,
            series_description=item.series_description, plane=item.plane,
            slice_position=item.slice_position,
        )
        if item.status == Scan.Status.ACCEPTED:
            earlier = existing.get(item.sha256) or seen.get(item.sha256)
            if earlier is not None:
                scan.status = Scan.Status.DUPLICATE
                scan.duplicate_of = earlier
                where = "already in this case" if earlier.batch_id != batch.pk else "earlier in this upload"
                scan.rejection_reason = f"Same content as “{earlier.original_name}”, {where}."[:300]
            else:
                to_store.append((scan, item))
                seen[item.sha256] = scan
        scans.append(scan)
    _store_all(to_store, stored)
    for scan in scans:  # a failed write rejects its scan and the copies of it in this upload
        origin = scan.duplicate_of if scan.status == Scan.Status.DUPLICATE and scan.duplicate_of else scan
        if scan.status != Scan.Status.REJECTED and origin.batch_id == batch.pk and not origin.file.name:
            scan.status, scan.duplicate_of, scan.rejection_reason = Scan.Status.REJECTED, None, NOT_STORED
    Scan.objects.bulk_create(scans, batch_size=500)
    batch.accepted_count = sum(scan.status == Scan.Status.ACCEPTED for scan in scans)
    batch.rejected_count = sum(scan.status == Scan.Status.REJECTED for scan in scans)
    batch.duplicate_count = sum(scan.status == Scan.Status.DUPLICATE for scan in scans)
    batch.save(update_fields=["accepted_count", "rejected_count", "duplicate_count"])
    result = UploadResult(batch=batch)
    if batch.accepted_count:
        result.jobs, result.missing_models = queue_predictions(batch, architectures)
    case.touch()
    return result


def _store_all(to_store: list[tuple[Scan, CheckedFile]], stored: list[str]) -> None:
    """Write every ``(scan, item)`` in the storage pool and set ``scan.file.name``; a file
    whose write failed keeps an empty name. Raises StorageUnavailable when none was written."""
    if not to_store:
        return
    lock = threading.Lock()
    futures: list[Future[str]] = []
    try:
        for scan, item in to_store:
            field = scan.file.field
            name = field.generate_filename(scan, item.name)
            futures.append(pool().submit(_store, name, item, field.max_length, stored, lock))
    finally:
        wait(futures)  # every write has ended before anything is recorded or removed
    errors: list[BaseException] = []
    for (scan, item), future in zip(to_store, futures, strict=True):
        error = future.exception()
        if error is None:
            scan.file.name = future.result()
        else:
            log.error("scan %r (position %s) could not be stored", item.name, item.position, exc_info=error)
            errors.append(error)
    if len(errors) == len(to_store):
        raise StorageUnavailable(f"none of {len(to_store)} files could be stored: {errors[0]!r}") from errors[0]


def _store(name: str, item: CheckedFile, max_length: int | None, stored: list[str], lock: threading.Lock) -> str:
    """Write one scan's metadata-free bytes under ``name`` (or a free variant of it). The
    name is listed in ``stored`` before the write, so that the upload's failure removes it;
    a write failing half-way is removed at once and only this file is lost."""
    from ml.metadata import strip_metadata

    if item.content is not None:  # a de-identified DICOM (portal.cases.dicom_intake)
        content = ContentFile(item.content)
    else:
        assert item.upload is not None  # a file without content of its own is an upload
        item.upload.seek(0)
        content = ContentFile(strip_metadata(item.upload.read(), item.format, item.orientation))
    name = default_storage.get_available_name(name, max_length=max_length)
    with lock:
        stored.append(name)
    try:
        saved = default_storage.save(name, content, max_length=max_length)
    except BaseException:
        try:
            default_storage.delete(name)
        except Exception:  # the write's own error matters more; the name stays listed
            log.exception("could not remove %s after a failed write", name)
        else:
            with lock:
                stored.remove(name)
        raise
    if saved != name:  # taken between the two calls: the storage wrote elsewhere
        with lock:
            stored[stored.index(name)] = saved
    return saved


def queue_predictions(batch: Batch, architectures: Iterable[str]) -> tuple[list[PredictionJob], list[str]]:
    """Create (and queue after commit) jobs for the chosen architectures that have an
    active version; return the jobs and the architectures that had none."""
    jobs: list[PredictionJob] = []
    missing: list[str] = []
    for arch in architectures:
        try:
            jobs += create_prediction_jobs(batch, [arch])
        except NoActiveModel:  # deactivated since the form was shown
            missing.append(arch)
    return jobs, missing
