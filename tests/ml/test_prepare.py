import io

import numpy as np
import pytest
from PIL import Image

from ml.crop import brain_bbox, brain_crop
from ml.prepare import prepare_image, prepare_with_geometry


def test_crop_trims_black_border(make_brain):
    img = make_brain(size=(200, 160))
    box = brain_bbox(img)
    assert box is not None
    left, top, right, bottom = box
    assert left > 20 and top > 10 and right < 180 and bottom < 150
    assert brain_crop(img).size == (right - left, bottom - top)


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


def _padded_square(image, n):
    """The pre-issue-9 preprocessing, the reference: pad to a square of the long side, resize."""
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas.resize((n, n), Image.BILINEAR, reducing_gap=None) if side != n else canvas


@pytest.mark.parametrize("size", [(200, 160), (160, 200), (121, 99), (99, 121), (40, 30), (30, 41), (200, 100),
                                  (224, 100), (100, 224), (1000, 333), (64, 900), (900, 64), (31, 2000)])
def test_letterbox_gives_the_padded_square_pixels_without_making_it(make_brain, size):
    """Serving stays what training saw: up to 2:1 the pixels are those of the padded square,
    bit for bit; longer images, letterboxed without the square, are within one grey level
    (Pillow's filter positions round differently), strips included."""
    from ml.prepare import letterbox

    img = make_brain(size=size, tumor=True, seed=size[0])
    about_square = max(size) <= 2 * min(size)
    for n in (64, 224):
        old = np.asarray(_padded_square(img, n), np.int16)
        new = np.asarray(letterbox(img, n), np.int16)
        assert new.shape == old.shape == (n, n, 3)
        diff = np.abs(old - new)
        if about_square:
            assert diff.max() == 0
        else:
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_gradcam_overlay_maps_the_model_frame_back_onto_the_original(make_brain):
    """A heat map hot where the prepared image is bright lands on the tumour in the original."""
    from ml.gradcam import overlay_png

    base = make_brain(size=(300, 180), seed=4)
    arr = np.asarray(base).copy()
    arr[60:80, 190:210] = 255  # the 'tumour', off centre
    img = Image.fromarray(arr, "RGB")
    prepared, box, side = prepare_with_geometry(img, 64, crop=True)
    cam = np.asarray(Image.fromarray(prepared[..., 0]).resize((8, 8), Image.BOX), np.float32)
    cam = np.clip(cam - 200, 0, None)
    cam /= cam.max()
    png = overlay_png(img, cam, box, side, alpha=0.9)
    heat = np.abs(np.asarray(Image.open(io.BytesIO(png)), np.int16) - arr.astype(np.int16)).sum(axis=-1)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert 45 <= y <= 95 and 175 <= x <= 225, (y, x)
    assert heat[:, :100].max() < heat.max() / 4  # the far side stays cool
