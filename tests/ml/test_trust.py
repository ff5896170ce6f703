"""Calibration, the out-of-distribution gate, the card's metadata and progress events, on a tiny
model trained on generated MRI-like images (weights none, 48 px)."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.ml.conftest import brain_image, encode


def test_brier_and_ece_match_a_hand_computed_example():
    from ml.metrics import brier_score, expected_calibration_error

    y = [0, 1, 1, 0, 1]
    p = [0.12, 0.15, 0.72, 0.78, 0.95]
    # Brier: (0.12² + 0.85² + 0.28² + 0.78² + 0.05²) / 5 = 1.4262 / 5
    assert brier_score(y, p) == pytest.approx(0.28524, abs=1e-12)
    # bins [0.1, 0.2): p 0.12, 0.15 vs labels 0, 1 -> |0.135 - 0.5| x 2/5 = 0.146
    # bin  [0.7, 0.8): p 0.72, 0.78 vs labels 1, 0 -> |0.75 - 0.5| x 2/5 = 0.100
    # bin  [0.9, 1.0]: p 0.95 vs label 1          -> |0.95 - 1.0| x 1/5 = 0.010
    assert expected_calibration_error(y, p) == pytest.approx(0.256, abs=1e-12)
    # P = 1.0 belongs to the last bin, with 0.95: |0.975 - 1| x 2/2
    assert expected_calibration_error([1, 1], [0.95, 1.0]) == pytest.approx(0.025, abs=1e-12)


def test_platt_scaling_fixes_overconfident_probabilities_and_keeps_their_order():
    from ml.calibration import apply_calibration, fit_platt
    from ml.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.uniform(size=4000) < true_p).astype(int)
    z = np.log(true_p / (1 - true_p))
    over = 1 / (1 + np.exp(-3 * z + 1))  # three times too confident, shifted
    cal = fit_platt(over, y)
    fixed = apply_calibration(over, cal)
    assert expected_calibration_error(y, over) > 0.1
    assert expected_calibration_error(y, fixed) < 0.03
    assert np.all(np.diff(fixed[np.argsort(over)]) >= 0)
    assert cal["a"] == pytest.approx(1 / 3, abs=0.05)


@pytest.fixture(scope="module")
def mri_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("mri") / "data"
    (d / "yes").mkdir(parents=True)
    (d / "no").mkdir()
    for i in range(16):
        (d / "yes" / f"Y{i}.png").write_bytes(encode(brain_image(size=(96, 88), tumor=True, seed=i)))
        (d / "no" / f"N{i}.png").write_bytes(encode(brain_image(size=(88, 96), seed=100 + i)))
    return d


@pytest.fixture(scope="module")
def trained(mri_dataset, tmp_path_factory):
    """A tiny model trained with the default (trusted) pipeline; its progress events."""
    from ml.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trusted") / "artifact"
    ood_set = tmp_path_factory.mktemp("ood_set")
    (ood_set / "flat.png").write_bytes(encode(Image.new("RGB", (96, 96), (90, 90, 90))))  # refused at intake
    noise = np.random.default_rng(7).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    (ood_set / "noise.png").write_bytes(encode(Image.fromarray(noise)))  # reaches the gate
    events = []
    cfg = TrainConfig(arch="vgg16", weights="none", input_size=48, views=2, threads=2, test_fraction=0.0,
                      feature_layers=["block3_conv3"], inner_folds=3, cv_folds=3, cv_repeats=1, robustness=True,
                      source="generated test images", ood_set=str(ood_set))
    result = train(cfg, str(mri_dataset), str(out), progress=events.append)
    return out, result, events


@pytest.mark.slow  # the first test to use `trained`: it trains the module's model
def test_progress_events_come_in_order_and_end_at_one(trained):
    from ml.progress import ProgressEvent

    _, _, events = trained
    assert events and all(isinstance(e, ProgressEvent) for e in events)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert events[-1].stage == "done" and events[-1].fraction == 1.0 and "artifact written" in events[-1].message
    stages = list(dict.fromkeys(e.stage for e in events))
    assert stages == ["listing", "loading", "features", "robustness", "cross-validation", "head", "saving", "done"]


def test_artifact_stores_calibration_ood_file_and_model_card_metadata(trained):
    from ml.ood import OOD_FILE
    from ml.weights import file_sha256

    out, _, _ = trained
    meta = json.loads((out / "metadata.json").read_text())
    cal = meta["calibration"]
    assert cal["method"] == "platt" and {"a", "b", "brier", "ece", "threshold"} <= set(cal)
    assert meta["threshold"] == pytest.approx(cal["threshold"])
    assert meta["ood"]["file"] == OOD_FILE and meta["ood"]["sha256"] == file_sha256(out / OOD_FILE)
    cv = meta["metrics"]["cv"]
    for key in ("accuracy", "auc", "brier", "ece"):
        assert set(cv[key]) >= {"mean", "ci95"} and cv[key]["ci95"][0] <= cv[key]["ci95"][1]
    assert cv["folds"] == 3 and cv["repeats"] == 1
    rob = meta["metrics"]["robustness"]
    assert set(rob) == {"rot90", "rot180", "rot270", "hflip", "jpeg_q30", "half_size", "gamma_0.7", "gamma_1.4"}
    assert all(set(v) >= {"accuracy", "delta", "flipped"} for v in rob.values())
    ood = meta["metrics"]["ood"]
    assert 0.8 <= ood["heldout_assessed"] <= 1.0 and ood["threshold"] == meta["ood"]["threshold"]
    # the --ood-set figure counts intake refusals and gate refusals alike: neither gets a label
    assert ood["ood_set_images"] == 2 and ood["ood_set_refused_at_intake"] == 1 and ood["ood_not_assessed"] == 1.0
    td = meta["training_data"]
    assert td["n_images"] == 32 and td["n_tumor"] == 16 and td["n_no_tumor"] == 16 and td["source"]
    assert meta["backbone"]["imagenet"] is False


def test_calibration_and_ood_gate_survive_save_and_load(trained):
    from ml.artifacts import load_artifact
    from ml.calibration import apply_calibration
    from ml.engine import InferenceEngine
    from ml.features import run_model
    from ml.prepare import prepare_image

    out, result, _ = trained
    model, meta = load_artifact(out)
    assert meta["calibration"] == result["calibration"]
    loaded = InferenceEngine(2, 1).load(out)
    assert loaded.calibration == result["calibration"] and loaded.ood.threshold == meta["ood"]["threshold"]
    img = brain_image(size=(90, 90), tumor=True, seed=500)
    pred = loaded.predict_one(encode(img))
    x = prepare_image(img, 48, True, "equalize")[None].astype("float32")
    raw = run_model(model, x).ravel()
    assert pred.probability == pytest.approx(float(apply_calibration(raw, meta["calibration"])[0]), abs=1e-5)
    assert pred.probability != pytest.approx(float(raw[0]), abs=1e-4)  # the calibration is applied
    assert pred.ood_score is not None and pred.assessed and pred.label in ("tumor", "no_tumor")


def test_grey_and_noise_images_are_not_assessed_while_new_mri_like_images_are(trained):
    from ml.engine import InferenceEngine

    out, _, _ = trained
    loaded = InferenceEngine(2, 1).load(out)
    heldout = [encode(brain_image(size=(96, 90), tumor=i % 2 == 0, seed=1000 + i)) for i in range(10)]
    ramp = np.tile(np.linspace(110, 150, 96), (96, 1)).astype(np.uint8)  # grey with a faint gradient
    grey = encode(Image.fromarray(ramp).convert("RGB"))
    noise = encode(Image.fromarray(np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8)))
    flat = encode(Image.new("RGB", (96, 96), (128, 128, 128)))
    preds = loaded.predict_bytes(heldout + [grey, noise, flat])
    # the threshold keeps 98.5 % of held-out images of a 32-image training set: allow two misses
    assert sum(p.assessed for p in preds[:10]) >= 8, [p.ood_score for p in preds]
    for p in preds[10:12]:
        assert p.error is None and not p.assessed and p.label is None  # no answer ...
        assert p.probability is not None  # ... but reviewers still see P
        assert p.ood_score > loaded.ood.threshold
    # a uniform square is ruled out before the model: not assessed, with the reason, and no failure
    flat_pred = preds[12]
    assert flat_pred.error is None and not flat_pred.assessed and flat_pred.label is None
    assert flat_pred.probability is None and "blank" in flat_pred.reason


def test_a_changed_ood_file_is_refused(trained, tmp_path):
    import shutil

    from ml.artifacts import ArtifactError, read_metadata

    out, _, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = bytearray((copy / "ood.npz").read_bytes())
    data[-10] ^= 0xFF
    (copy / "ood.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="ood.npz does not match"):
        read_metadata(copy)
    (copy / "ood.npz").unlink()
    with pytest.raises(ArtifactError, match="no OOD file"):
        read_metadata(copy)


def test_artifacts_without_ood_file_are_served_as_before(vgg_artifact, engine, enc, make_brain):
    pred = engine.load(vgg_artifact).predict_one(enc(make_brain()))
    assert pred.assessed is True and pred.ood_score is None and pred.label in ("tumor", "no_tumor")


def test_test_time_rotations_make_a_turned_scan_score_the_same(trained, tmp_path):
    """An artifact with ``tta`` scores the four rotations of each image and averages their
    features: an image turned by 90/180/270 degrees gets the same probability, which is the
    calibrated head on the mean features of the four views."""
    import shutil

    from ml.artifacts import load_artifact
    from ml.builders import feature_model
    from ml.calibration import apply_calibration
    from ml.engine import InferenceEngine
    from ml.features import run_model
    from ml.prepare import prepare_image
    from ml.tta import TTA_ORIENTATIONS, orbit

    out, _, _ = trained
    copy = tmp_path / "tta"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["tta"] = {"orientations": list(TTA_ORIENTATIONS)}
    (copy / "metadata.json").write_text(json.dumps(meta))
    plain, turned = InferenceEngine(2, 1).load(out), InferenceEngine(2, 1).load(copy)
    img = brain_image(size=(96, 96), tumor=True, seed=77)
    prepared = prepare_image(img, 48, True, "equalize").astype("float32")
    turns = np.stack([np.rot90(prepared, k) for k in range(4)])
    p_plain = plain.predict_arrays(turns)
    p_tta = turned.predict_arrays(turns)
    assert np.ptp(p_tta) < 1e-5, p_tta  # the same four views, whichever arrived
    assert np.ptp(p_plain) > 1e-3, p_plain  # one view: turning the scan changes its probability
    # End to end from the file, the crop and the letterbox are not exactly turn-symmetric
    # (an odd pixel of padding), so the spread only shrinks.
    from_files = [p.probability for p in turned.predict_bytes([encode(img.rotate(a)) for a in (0, 90, 180, 270)])]
    from_files_plain = [p.probability for p in plain.predict_bytes([encode(img.rotate(a)) for a in (0, 90, 180, 270)])]
    assert np.ptp(from_files) < np.ptp(from_files_plain)

    model, meta = load_artifact(copy)
    views = orbit(prepared[None])
    mean_features = run_model(feature_model(model), views).mean(axis=0, keepdims=True)
    head = turned._head
    expected = apply_calibration(head(mean_features, training=False).numpy().ravel(), meta["calibration"])[0]
    assert p_tta[0] == pytest.approx(float(expected), abs=1e-5)
    # the OOD gate scores the image as it arrived
    assert turned.score_arrays(turns[:1])[1][0] == pytest.approx(plain.score_arrays(turns[:1])[1][0], rel=1e-4)


def test_training_records_tta_only_when_it_has_the_rotation_views(trained):
    out, _, _ = trained
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["extra"]["train_config"]["views"] == 2 and "tta" not in meta  # 2 views: no rotations cached


def test_a_colour_image_is_not_assessed_with_the_reason(trained):
    """The model sees every image in grey; the gate still knows a colour picture is no MRI slice."""
    from ml.engine import InferenceEngine
    from tests.ml.test_colour import tinted

    out, _, _ = trained
    loaded = InferenceEngine(2, 1).load(out)
    img = brain_image(size=(96, 96), tumor=False, seed=1001)
    grey, colour = loaded.predict_bytes([encode(img), encode(tinted(img))])
    assert grey.reason is None
    assert colour.error is None and not colour.assessed and colour.label is None
    assert "in colour" in colour.reason
    assert colour.probability is not None and colour.ood_score is not None  # kept for reviewers
