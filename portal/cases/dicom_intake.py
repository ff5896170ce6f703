"""DICOM and .zip intake: one uploaded file -> the checked scans it holds.

A .zip (of a series or a study) is unpacked safely (``portal.cases.archives``); each DICOM
object is checked (MR only, no burned-in annotation: ``ml.dicom``), its patient identity
is reduced to a keyed hash, a multi-frame object becomes one scan per frame, and each scan
is de-identified (``portal.cases.deidentify``) before anything is stored. Only the
de-identified bytes ever reach storage.

What one upload may become is bounded as a whole (:class:`UploadBudget`): at most
``UPLOAD_MAX_FILES`` scans once its archives are unpacked and its multi-frame objects split,
and at most ``DICOM_ZIP_MAX_BYTES`` of de-identified DICOM held until it is stored. Past
either, the upload is refused whole; each archive is also bounded on its own.

Patients are never mixed: an upload whose DICOM files name two patients is refused as a
whole (:class:`UploadRefused`); a case holds the patient of its first DICOM upload, and a
later file of another patient is refused, one by one.
"""

import copy
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat, pluralize
from pydicom.dataset import Dataset

from ml.dicom import (
    DicomRejected,
    check_dataset,
    check_frame_content,
    check_intake_limits,
    frame_count,
    frames_to_rgb,
    is_dicom,
    read_dataset,
    series_info,
)
from ml.intake import ImageRejected, IntakeLimits
from portal.cases.archives import ArchiveLimits, ArchiveRefused, is_zip, unpack
from portal.cases.deidentify import Deidentifier, PatientIdentity

if TYPE_CHECKING:
    from portal.cases.models import Case
    from portal.cases.uploads import CheckedFile

    MakeChecked = Callable[..., CheckedFile]

OTHER_PATIENT = "Not accepted: belongs to a different patient than this case."
NO_PATIENT = "Not accepted: the file names no patient, so it cannot be matched to this case's patient."


class UploadRefused(Exception):
    """The upload as a whole cannot be taken; nothing was stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadBudget:
    """Counts what one upload expands to; :class:`UploadRefused` once it is past the limits.
    The request's own limits bound what is sent; this bounds what it unpacks to (many zips
    or multi-frame objects in one request would otherwise multiply the per-file limits)."""

    def __init__(self) -> None:
        self.max_scans = settings.UPLOAD_MAX_FILES
        self.max_bytes = settings.DICOM_ZIP_MAX_BYTES
        self.scans = 0
        self.bytes = 0

    def take_scans(self, count: int) -> None:
        self.scans += count
        if self.scans > self.max_scans:
            raise UploadRefused(
                f"This upload holds more than {self.max_scans} scans once its archives are unpacked and "
                f"its multi-frame DICOM files split into slices; one upload takes at most {self.max_scans}. "
                "It was refused as a whole and nothing was stored: upload it in several parts."
            )

    def take_bytes(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            size = filesizeformat(self.max_bytes).replace("\xa0", " ")
            raise UploadRefused(
                f"This upload's DICOM data comes to more than {size} once unpacked; one upload takes "
                f"at most {size}. It was refused as a whole and nothing was stored: upload it in several parts."
            )


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_entries=settings.UPLOAD_MAX_FILES,
        max_entry_bytes=settings.UPLOAD_MAX_FILE_BYTES,
        max_total_bytes=settings.DICOM_ZIP_MAX_BYTES,
        max_ratio=settings.DICOM_ZIP_MAX_RATIO,
    )


def peek(upload: UploadedFile, size: int = 132) -> bytes:
    upload.seek(0)
    head = upload.read(size)
    upload.seek(0)
    return head


def wants_expansion(head: bytes) -> bool:
    return is_zip(head) or is_dicom(head)


def _rejected(make: "MakeChecked", name: str, size: int, reason: str) -> "CheckedFile":
    from portal.cases.models import Scan

    return make(name=name, size=size, status=Scan.Status.REJECTED, reason=f"Not accepted: {reason}."[:300])


class DicomIntake:
    """One per upload: it de-identifies every object with the case's clinic pseudonyms and
    charges every scan it makes, and the bytes it keeps, to the upload's budget."""

    def __init__(self, clinic_id: Any, make_checked: "MakeChecked", budget: UploadBudget) -> None:
        self.clinic_id = clinic_id
        self.make = make_checked  # CheckedFile factory (keyword arguments)
        self.budget = budget
        self._deidentifier: Deidentifier | None = None

    @property
    def deidentifier(self) -> Deidentifier:
        if self._deidentifier is None:
            self._deidentifier = Deidentifier(self.clinic_id)
        return self._deidentifier

    def expand(self, upload: UploadedFile, name: str, limits: IntakeLimits) -> "list[CheckedFile]":
        """Every scan in one uploaded file (a DICOM object or a zip of them), which the
        budget has counted as one scan already."""
        size = upload.size or 0
        head = peek(upload)
        if is_zip(head):
            if size > settings.DICOM_ZIP_MAX_BYTES:
                mb = settings.DICOM_ZIP_MAX_BYTES // (1024 * 1024)
                return [_rejected(self.make, name, size, f"the archive is over {mb} MB")]
            try:
                entries = unpack(upload.read(), archive_limits())
            except ArchiveRefused as exc:
                return [_rejected(self.make, name, size, exc.reason)]
            self.budget.take_scans(len(entries) - 1)  # the zip was counted as one; each entry gives one or more
            out = []
            entries.reverse()
            while entries:  # each entry's bytes are let go once it is read
                entry_name, data = entries.pop()
                shown = f"{name}/{entry_name}"[:255]
                if not is_dicom(data):
                    out.append(_rejected(self.make, shown, len(data),
                                         "not a DICOM file (an archive may hold DICOM files only)"))
                    continue
                out += self.dicom(shown, data, limits)
            return out
        if size > limits.max_bytes:
            return [_rejected(self.make, name, size, f"the file is over {limits.max_bytes // (1024 * 1024)} MB")]
        return self.dicom(name, upload.read(), limits)

    def dicom(self, name: str, data: bytes, limits: IntakeLimits) -> "list[CheckedFile]":
        """The scans of one DICOM object (counted as one scan before it was read)."""
        try:
            ds = read_dataset(data)
            check_dataset(ds, max_pixels=limits.max_pixels, max_frames=settings.DICOM_MAX_FRAMES)
            check_intake_limits(ds, len(data), limits)
        except (DicomRejected, ImageRejected) as exc:
            return [_rejected(self.make, name, len(data), exc.reason)]
        extra_scans = frame_count(ds) - 1
        self.budget.take_scans(extra_scans)  # before any frame is decoded
        try:
            frames = frames_to_rgb(ds)  # decodes every frame: a file that cannot be read is refused now
        except (DicomRejected, ImageRejected) as exc:
            self.budget.take_scans(-extra_scans)  # one scan after all: the refused file
            return [_rejected(self.make, name, len(data), exc.reason)]
        patient = PatientIdentity.of(ds, self.clinic_id)
        info = series_info(ds)
        singles = [ds] if len(frames) == 1 else split_frames(ds)
        out = []
        for frame, single in zip(frames, singles, strict=True):
            shown = name if len(frames) == 1 else f"{name} [frame {frame.index + 1}]"[:255]
            try:
                check_frame_content(frame.image, limits)
            except ImageRejected as exc:  # e.g. a blank slice at the edge of a volume
                out.append(_rejected(self.make, shown, 0, exc.reason))
                continue
            content = self.deidentifier.deidentify(single)
            self.budget.take_bytes(len(content))  # kept in memory until the upload is stored
            out.append(self.make(
                name=shown, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                format="DICOM", width=frame.image.width, height=frame.image.height, content=content,
                patient_hash=patient, **info,
            ))
            frame.image.close()
        return out


def split_frames(ds: Dataset) -> list[Dataset]:
    """A multi-frame object as single-frame objects, pixel data uncompressed."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    frames = frame_count(ds)
    data = ds.PixelData
    size = len(data) // frames
    bits = int(ds.get("BitsAllocated") or 0)
    declared = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * bits // 8
    if bits % 8 == 0 and 0 < declared * frames <= len(data):
        size = declared  # data beyond the declared frames (padding, or more) goes to no frame
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    singles = []
    for index in range(frames):
        single = copy.deepcopy(ds)
        single.PixelData = data[index * size:(index + 1) * size]
        single.NumberOfFrames = 1
        if per_frame is not None and len(per_frame) > index:
            single.PerFrameFunctionalGroupsSequence = [copy.deepcopy(per_frame[index])]
        singles.append(single)
    return singles


def refuse_mixed_patients(checked: "Iterable[CheckedFile]") -> None:
    """An upload with files of two (or more) patients is refused whole, with the counts."""
    counts = Counter(item.patient_hash for item in checked if item.patient_hash)
    if len(counts) > 1:
        numbers = sorted(counts.values(), reverse=True)
        shown = " and ".join(str(n) for n in numbers)
        raise UploadRefused(
            f"This upload holds DICOM files of {len(numbers)} different patients ({shown} "
            f"file{pluralize(sum(numbers))} respectively); it was refused as a whole and nothing was stored. "
            "Upload each patient's files to that patient's own case."
        )


def match_case_patient(case: "Case", checked: "list[CheckedFile]") -> bool:
    """Under the case's row lock: refuse files of another patient; a case without a patient
    takes the one of its first DICOM upload. Returns True when the case was given one."""
    from portal.cases.models import Case, Scan

    dicom = [item for item in checked if item.status == Scan.Status.ACCEPTED and item.format == "DICOM"]
    if not dicom:
        return False
    current = Case.objects.only("dicom_patient_hash").get(pk=case.pk).dicom_patient_hash
    named = {item.patient_hash for item in dicom if item.patient_hash}
    if not current and named:
        (current,) = named  # refuse_mixed_patients already made sure there is one
        Case.objects.filter(pk=case.pk).update(dicom_patient_hash=current)
        case.dicom_patient_hash = current
    if not current:
        return False
    for item in dicom:
        if item.patient_hash != current:
            item.status = Scan.Status.REJECTED
            item.reason = OTHER_PATIENT if item.patient_hash else NO_PATIENT
            item.content = None
    return True
