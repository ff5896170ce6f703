import numpy as np
from PIL import Image

from ml.crop import brain_bbox, brain_crop
from ml.prepare import prepare_image, prepare_with_geometry


def test_crop_trims_black_border(make_brain):
    img = make_brain(size=(200, 160))
    box = brain_bbox(img)
    assert box is not None
    l, t, r, b = box
    assert l > 20 and t > 10 and r < 180 and b < 150
    assert brain_crop(img).size == (r - l, b - t)


def test_crop_leaves_black_or_full_images(make_brain):
    black = Image.new("RGB", (50, 50))
    assert brain_bbox(black) is None and brain_crop(black).size == (50, 50)
    flat = Image.new("RGB", (50, 40), (128, 128, 128))
    assert brain_crop(flat).size == (50, 40)


def test_prepare_shape_dtype_and_padding(make_brain):
    img = make_brain(size=(120, 60))
    arr = prepare_image(img, 64, crop=False)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
    assert arr[:8].max() == 0 and arr[-8:].max() == 0  # letterbox bands
    arr2, box, side = prepare_with_geometry(img, 48, crop=True)
    assert arr2.shape == (48, 48, 3) and side == max(box[2] - box[0], box[3] - box[1])


def test_prepare_is_deterministic(make_brain):
    img = make_brain(tumor=True, seed=3)
    assert np.array_equal(prepare_image(img, 64), prepare_image(img.copy(), 64))
