"""ml.dicom: DICOM pixels to the model's 8-bit RGB input, one documented way."""

import io

import numpy as np
import pydicom
import pytest

from ml.dicom import DicomRejected, check_dataset, frames_to_rgb, is_dicom, read_dataset
from ml.intake import ImageRejected, decode_image
from tests.fixtures.dicom import bundled, make_mr_dicom, mutated_mr_dicom, nest_sequences


def grey(data):
    ds = pydicom.dcmread(io.BytesIO(data))
    (frame,) = frames_to_rgb(ds)
    arr = np.asarray(frame.image)
    assert arr.shape[-1] == 3 and (arr[..., 0] == arr[..., 2]).all()
    return ds, arr[..., 0].astype(int)


def test_window_centre_width_maps_linearly_onto_0_255():
    ds, out = grey(make_mr_dicom(window=(2000, 1001)))
    raw = ds.pixel_array.astype(float)
    assert (out[raw <= 1500] == 0).all() and (out[raw >= 2500] == 255).all()
    middle = (raw > 1600) & (raw < 2400)
    expected = ((raw[middle] - 1999.5) / 1000 + 0.5) * 255
    assert np.abs(out[middle] - expected).max() <= 1


def test_rescale_is_applied_before_the_window():
    _, plain = grey(make_mr_dicom(window=(2000, 1001)))
    _, rescaled = grey(make_mr_dicom(window=(4000, 2001), rescale=(2, 0)))
    assert np.abs(plain - rescaled).max() <= 1


def test_without_a_window_the_frame_range_is_stretched_and_monochrome1_is_inverted():
    ds, out = grey(make_mr_dicom(window=None))
    assert out.min() == 0 and out.max() == 255
    raw = ds.pixel_array
    assert out[raw == raw.max()].min() == 255
    _, inverted = grey(make_mr_dicom(window=None, photometric="MONOCHROME1"))
    assert (inverted == 255 - out).all()


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_RLE.dcm"])
def test_bundled_mr_files_decode_alike_whatever_the_transfer_syntax(name):
    reference = np.asarray(decode_image(bundled("MR_small.dcm")).image)
    decoded = decode_image(bundled(name))
    assert decoded.format == "DICOM" and decoded.image.mode == "RGB"
    assert (np.asarray(decoded.image) == reference).all()


def test_dicom_is_judged_by_content_and_non_mr_is_refused_with_its_reason():
    assert is_dicom(bundled("MR_small.dcm")) and not is_dicom(b"DICM" + b"\0" * 200)
    with pytest.raises(ImageRejected, match="CT images are not supported: the model reads MRI"):
        decode_image(bundled("CT_small.dcm"))
    with pytest.raises(ImageRejected, match="burned-in annotation"):
        decode_image(make_mr_dicom(burned_in="YES"))
    data = bundled("MR_small.dcm")
    with pytest.raises(ImageRejected, match="truncated or corrupt DICOM|pixel data could not be decoded"):
        decode_image(data[: len(data) - 500])


def test_frame_count_and_pixels_are_bounded():
    ds = read_dataset(make_mr_dicom(frames=4))
    assert len(frames_to_rgb(ds)) == 4
    with pytest.raises(DicomRejected, match="4 frames; the limit is 3"):
        check_dataset(ds, max_pixels=10_000, max_frames=3)
    with pytest.raises(DicomRejected, match="4096 pixels; the limit is 1000"):
        check_dataset(ds, max_pixels=1000, max_frames=10)


def test_dicom_meets_the_same_shape_and_content_checks_as_jpeg():
    with pytest.raises(ImageRejected, match="too small to hold a brain scan"):
        decode_image(make_mr_dicom(size=(32, 32)))
    with pytest.raises(ImageRejected, match="longer side is 5.0 times"):
        decode_image(make_mr_dicom(size=(320, 64)))
    with pytest.raises(ImageRejected, match="blank"):
        decode_image(make_mr_dicom(window=(-5000, 10)))  # everything above the window: all white


def _slope_not_a_number(data):
    """pydicom refuses to write such a value, so the bytes are changed (the slope "7.0 ")."""
    element = b"\x28\x00\x53\x10DS\x04\x00"
    assert data.count(element + b"7.0 ") == 1
    return data.replace(element + b"7.0 ", element + b"ab.c")


@pytest.mark.parametrize("mutate, words", [
    (None, "could not be converted"),
    (lambda ds: nest_sequences(ds, 40), "nests sequences more than 16 levels deep"),
], ids=["rescale slope not a number", "sequences 40 deep"])
def test_hostile_headers_are_refused_with_a_reason_not_an_exception(mutate, words):
    """Found by fuzzing pydicom's test files: each raised out of the intake (a 500 at upload)."""
    data = _slope_not_a_number(make_mr_dicom(rescale=(7, 0))) if mutate is None else mutated_mr_dicom(mutate)
    with pytest.raises(ImageRejected):  # the worker's path (one frame at most)
        decode_image(data)
    ds = read_dataset(data)  # the upload's path
    with pytest.raises(DicomRejected, match=words):
        check_dataset(ds, max_pixels=10**7, max_frames=200)
        frames_to_rgb(ds)


def test_an_orientation_of_fewer_than_six_values_gives_no_plane():
    from ml.dicom import series_info

    ds = read_dataset(mutated_mr_dicom(lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0])))
    assert series_info(ds)["plane"] == ""


def test_pixel_data_beyond_the_declared_frames_is_not_decoded():
    """pydicom returned every frame the data held, past the frame limit that counted
    NumberOfFrames (and the upload's budget); the excess is now left undecoded."""
    data = mutated_mr_dicom(lambda ds: (setattr(ds, "NumberOfFrames", 2), setattr(ds, "PixelData", ds.PixelData * 3)))
    assert len(frames_to_rgb(read_dataset(data))) == 2


def test_the_memory_estimate_counts_the_float_conversion():
    """A 6000 x 6000 16-bit frame peaks near 1 GB while converted (fuzzing measured 1.3 GB at
    7000 x 7000), over the 1 GB budget that the old estimate (16 bytes a pixel) let it through."""
    from ml.dicom import check_intake_limits
    from ml.intake import IntakeLimits

    ds = read_dataset(make_mr_dicom())
    ds.Rows = ds.Columns = 6000
    with pytest.raises(ImageRejected, match="would need about 11\\d\\d MB of memory"):
        check_intake_limits(ds, 1000, IntakeLimits())
    ds.Rows = ds.Columns = 2048  # a large but ordinary MR frame
    check_intake_limits(ds, 1000, IntakeLimits())
