"""DICOM pixel handling: untrusted DICOM bytes -> 8-bit RGB frames, or a clear rejection.

A file is DICOM when its bytes say so (the 128-byte preamble followed by ``DICM``), never
by its name. Only MR images are accepted: the model reads MRI. Images flagged
``BurnedInAnnotation: YES`` are refused (text burned into the pixels cannot be removed by
de-identification). Compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE) are
decoded by pydicom with the pylibjpeg plugins.

The one way a frame becomes 8 bits (it matches how the training JPEGs look: an image as
a radiologist's viewer displayed it, exported as 8-bit greyscale):

1. the modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence);
2. the VOI transform: a VOI LUT Sequence when present, else the first Window
   Centre/Width (PS3.3 C.11.2.1.2, linear), mapped onto 0..255; without either, the
   frame's own minimum..maximum is stretched linearly onto 0..255;
3. MONOCHROME1 is inverted so that 0 is always black (the MRI background);
4. the grey frame is repeated into three RGB channels. Colour (RGB/YBR) frames are
   converted to 8-bit RGB by pydicom.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "DICOM_MAGIC_OFFSET", "DicomFrame", "DicomRejected", "is_dicom", "read_dataset",
    "check_dataset", "frame_count", "frame_to_rgb", "frames_to_rgb", "series_info",
]

DICOM_MAGIC_OFFSET = 128
_MAGIC = b"DICM"


class DicomRejected(Exception):
    """The bytes are not an acceptable DICOM image. ``str(exc)`` is a short reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class DicomFrame:
    image: Image.Image  # mode "RGB"
    index: int  # 0-based frame number within the object


def is_dicom(data: bytes) -> bool:
    return len(data) >= DICOM_MAGIC_OFFSET + 4 and data[DICOM_MAGIC_OFFSET:DICOM_MAGIC_OFFSET + 4] == _MAGIC


def read_dataset(data: bytes):
    """Parse DICOM bytes (pixel data included) or raise :class:`DicomRejected`."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not is_dicom(data):
        raise DicomRejected("not a DICOM file")
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError):
        raise DicomRejected("truncated or corrupt DICOM data") from None
    except Exception:  # pydicom raises many kinds on hostile input
        raise DicomRejected("truncated or corrupt DICOM data") from None


def _text(ds, keyword) -> str:
    value = ds.get(keyword)
    return str(value).strip() if value is not None else ""


def check_dataset(ds, *, max_pixels: int, max_frames: int) -> None:
    """Refuse what the model must not read: not MR, burned-in text, no or too many pixels."""
    modality = _text(ds, "Modality").upper()
    if modality != "MR":
        shown = modality or "DICOM objects without a modality"
        if modality:
            shown = f"{modality} images"
        raise DicomRejected(f"{shown} are not supported: the model reads MRI")
    if _text(ds, "BurnedInAnnotation").upper() == "YES":
        raise DicomRejected(
            "the image is flagged as having burned-in annotation (text in the pixels, "
            "which de-identification cannot remove)"
        )
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomRejected("the DICOM object has no image")
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows <= 0 or columns <= 0:
        raise DicomRejected("image has no pixels")
    frames = frame_count(ds)
    if rows * columns > max_pixels:
        raise DicomRejected(f"image is {rows * columns} pixels; the limit is {max_pixels}")
    if frames > max_frames:
        raise DicomRejected(f"the object has {frames} frames; the limit is {max_frames}")
    depth = _sequence_depth(ds, MAX_SEQUENCE_DEPTH)
    if depth > MAX_SEQUENCE_DEPTH:
        raise DicomRejected(f"the header nests sequences more than {MAX_SEQUENCE_DEPTH} levels deep")


# Real objects nest a handful of levels; hundreds made de-identification recurse without end.
MAX_SEQUENCE_DEPTH = 16


def _sequence_depth(ds, limit: int) -> int:
    """How deep ``ds`` nests sequences, walked without recursion; stops past ``limit``."""
    deepest, stack = 0, [(ds, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        try:
            elements = list(item)  # reading each element parses one level of a raw sequence
        except Exception:
            raise DicomRejected("truncated or corrupt DICOM data") from None
        for element in elements:
            if element.VR == "SQ" and element.value:
                stack.extend((sub, depth + 1) for sub in element.value)
    return deepest


def frame_count(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _first(value):
    if value is None:
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _to_uint8(ds, arr: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    arr = apply_modality_lut(arr, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds, index=0).astype(np.float64)
        lo, hi = float(arr.min()), float(arr.max())
    else:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        if center is not None and width is not None and width >= 1:
            # PS3.3 C.11.2.1.2.1 (LINEAR), output range 0..255.
            scaled = ((arr - (center - 0.5)) / (width - 1) + 0.5) * 255.0
            out = np.clip(scaled, 0, 255)
            return _invert_if_monochrome1(ds, np.rint(out).astype(np.uint8))
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.clip(np.rint((arr - lo) * scale), 0, 255).astype(np.uint8)
    return _invert_if_monochrome1(ds, out)


def _invert_if_monochrome1(ds, out: np.ndarray) -> np.ndarray:
    if _text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1":
        return 255 - out
    return out


def _colour_to_uint8(ds, arr: np.ndarray) -> np.ndarray:
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    if arr.dtype == np.uint8 or bits <= 8:
        return arr.astype(np.uint8)
    return np.clip(np.rint(arr.astype(np.float64) / ((1 << bits) - 1) * 255.0), 0, 255).astype(np.uint8)


def frame_to_rgb(ds, arr: np.ndarray) -> Image.Image:
    """One frame's stored pixel values -> 8-bit RGB image (see module doc)."""
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return Image.fromarray(_colour_to_uint8(ds, arr), mode="RGB")
    if arr.ndim != 2:
        raise DicomRejected("unsupported pixel layout")
    return Image.fromarray(_to_uint8(ds, arr), mode="L").convert("RGB")


def frames_to_rgb(ds) -> list[DicomFrame]:
    """Every frame of a checked dataset as 8-bit RGB. The pixel data must hold exactly the
    frames, rows, columns and samples its header declares (pydicom would return frames beyond
    NumberOfFrames, past every limit that counted the frames)."""
    try:
        ds.pixel_array_options(allow_excess_frames=False)
        arr = ds.pixel_array
    except Exception:
        raise DicomRejected("the pixel data could not be decoded") from None
    frames = frame_count(ds)
    colour = int(ds.get("SamplesPerPixel") or 1) == 3
    shape = (int(ds.Rows), int(ds.Columns)) + ((3,) if colour else ())
    if frames == 1 and arr.shape == shape:
        stack = [arr]
    elif frames > 1 and arr.shape == (frames, *shape):
        stack = list(arr)
    else:
        raise DicomRejected("the pixel data does not match the header (frames, size or samples)")
    try:
        return [DicomFrame(image=frame_to_rgb(ds, item), index=i) for i, item in enumerate(stack)]
    except DicomRejected:
        raise
    except Exception:  # e.g. a rescale slope or window that is not a number
        raise DicomRejected("the pixel values could not be converted (a header value is invalid)") from None


_PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}


def _plane(ds) -> str:
    iop = ds.get("ImageOrientationPatient")
    try:
        row, col = np.array([float(v) for v in iop[:3]]), np.array([float(v) for v in iop[3:6]])
    except (TypeError, ValueError, IndexError):
        return ""
    if row.shape != (3,) or col.shape != (3,):  # fewer than six values
        return ""
    normal = np.abs(np.cross(row, col))
    if not normal.any():
        return ""
    axis = int(np.argmax(normal))
    return _PLANES[axis] if normal[axis] >= 0.8 else "oblique"


def series_info(ds) -> dict:
    """What the scan page shows: series description, plane, slice position (when present)."""
    position = ""
    if ds.get("SliceLocation") is not None:
        try:
            position = f"{float(ds.SliceLocation):.1f} mm"
        except (TypeError, ValueError):
            position = ""
    return {
        "series_description": _text(ds, "SeriesDescription")[:200],
        "plane": _plane(ds),
        "slice_position": position,
    }


_FLOAT_COPY_BYTES = 16


def check_intake_limits(ds, data_bytes: int, limits) -> None:
    """The same header checks as JPEG/PNG (``ml.intake``): shape, minimum side, aspect and
    the memory that decoding every frame and preparing one would take, before any pixel
    is decoded. Raises :class:`ml.intake.ImageRejected`."""
    from ml.intake import ImageRejected, _check_shape, working_bytes

    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    samples = 3 if int(ds.get("SamplesPerPixel") or 1) == 3 else 1
    mode = "RGB" if samples == 3 else "I;16"
    _check_shape(columns, rows, mode, data_bytes, limits)
    frames = frame_count(ds)
    # Besides what a PNG of the mode takes: the modality LUT and window in float64 (16 bytes
    # a sample: the values and their mapped copy) and the other frames, decoded. A fuzzing
    # pass measured 27-29 bytes a pixel for 7000 x 7000 grey and 63 for colour.
    pixels = rows * columns
    need = (working_bytes(columns, rows, mode, data_bytes) + pixels * samples * _FLOAT_COPY_BYTES
            + (frames - 1) * pixels * samples * 8)
    if need > limits.work_budget_bytes:
        raise ImageRejected(
            f"the {frames} frames of {columns} × {rows} pixels would need about "
            f"{need // (1024 * 1024)} MB of memory to process; the limit is "
            f"{limits.work_budget_bytes // (1024 * 1024)} MB"
        )


def check_frame_content(image, limits) -> None:
    """Blank / uniform / structureless frames are refused like such JPEGs (``ml.intake``)."""
    from ml.intake import _check_content

    if limits.content_checks:
        _check_content(image)


def decode_single(data: bytes, limits):
    """The hook for :func:`ml.intake.decode_image`: a single-frame MR DICOM -> DecodedImage.

    Stored scans are single-frame (multi-frame uploads are split at intake), so a
    multi-frame object here is refused rather than silently reduced to one frame."""
    from ml.intake import DecodedImage, ImageRejected

    try:
        ds = read_dataset(data)
        check_dataset(ds, max_pixels=limits.max_pixels, max_frames=1)
        check_intake_limits(ds, len(data), limits)
        (frame,) = frames_to_rgb(ds)
    except DicomRejected as exc:
        raise ImageRejected(exc.reason) from None
    image = frame.image
    check_frame_content(image, limits)
    return DecodedImage(image=image, width=image.width, height=image.height, format="DICOM")
