"""The colour check of the gate: MRI slices are greyscale, photographs are not."""
from pathlib import Path

import numpy as np
from PIL import Image

from tests.ml.conftest import brain_image

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "brain-mri-navoneel"


def tinted(img: Image.Image) -> Image.Image:
    """The same picture in false colour (as a photo or a colour map would be)."""
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    return Image.fromarray(np.stack([grey, grey * 0.4, 255 - grey], axis=2).astype(np.uint8))


def test_colour_share_of_grey_and_colour_images():
    from ml.colour import COLOUR_LIMIT, colour_reason, colour_share

    img = brain_image(size=(200, 180), tumor=True, seed=3)
    assert colour_share(img) == 0.0 and colour_share(img.convert("L")) == 0.0
    assert colour_reason(colour_share(img)) is None
    share = colour_share(tinted(img))
    assert share > COLOUR_LIMIT
    assert "in colour" in colour_reason(share) and "greyscale" in colour_reason(share)


def test_every_training_image_is_greyscale_enough():
    """None of the 253 images the shipped model learned from would be turned away for colour
    (largest share measured: 7.9 %)."""
    from ml.colour import COLOUR_LIMIT, colour_share

    files = [p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    assert len(files) == 253
    shares = [colour_share(Image.open(p)) for p in files]
    assert max(shares) < COLOUR_LIMIT / 3
