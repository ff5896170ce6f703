import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ml.artifacts import ArtifactError, load_artifact, read_metadata, save_artifact
from ml.engine import ImagePrediction


def _batch(make_brain, enc, n=5):
    return [enc(make_brain(tumor=i % 2 == 1, seed=i), "PNG" if i % 2 else "JPEG") for i in range(n)]


def test_build_classifier_shapes():
    from ml.builders import build_classifier

    m = build_classifier("vgg16", weights=None, input_size=32)
    assert tuple(m.inputs[0].shape) == (None, 32, 32, 3)
    p = m(np.zeros((3, 32, 32, 3), np.float32)).numpy()
    assert p.shape == (3, 1) and np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError):
        build_classifier("alexnet", weights="none")
    with pytest.raises(ValueError):
        build_classifier("vgg16", weights="none", input_size=16)


def test_local_weights_file_and_missing_file(tmp_path):
    import keras

    from ml.builders import build_classifier
    from ml.weights import WeightsError

    ref = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_test_notop.weights.h5"
    ref.save_weights(path)
    m = build_classifier("vgg16", weights=str(path), input_size=32, seed=123)
    for name in ("block1_conv1", "block4_conv3"):
        for a, b in zip(m.get_layer(name).get_weights(), ref.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(WeightsError, match="not found"):
        build_classifier("vgg16", weights=str(tmp_path / "nope.h5"), input_size=32)


def test_metadata_contents(vgg_artifact):
    meta = read_metadata(vgg_artifact)
    assert meta["architecture"] == "vgg16" and meta["input_size"] == 64
    assert meta["class_names"] == ["no_tumor", "tumor"]
    assert meta["threshold"] == 0.5 and len(meta["model_sha256"]) == 64
    assert meta["crop"] is True and meta["preprocessing"]["crop"] == "brain"
    assert "tensorflow" in meta["versions"] and "keras" in meta["versions"]
    assert meta["created"].endswith("+00:00") and meta["dataset_fingerprint"] == "test"


def test_round_trip_identical_predictions(tmp_path, make_brain):
    from ml.builders import build_classifier
    from ml.prepare import prepare_image

    model = build_classifier("vgg16", weights="none", input_size=48, seed=1)
    x = np.stack([prepare_image(make_brain(tumor=i % 2 == 0, seed=i), 48) for i in range(4)]).astype(np.float32)
    before = model(x, training=False).numpy()
    save_artifact(model, tmp_path / "a", architecture="vgg16", input_size=48, threshold=0.42)
    loaded, meta = load_artifact(tmp_path / "a")
    after = loaded(x, training=False).numpy()
    np.testing.assert_array_equal(before, after)
    assert meta["threshold"] == 0.42


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_tampered_and_broken_artifacts_rejected(vgg_artifact, tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        read_metadata(tmp_path / "missing")
    a = _copy(vgg_artifact, tmp_path / "tampered")
    with open(a / "model.keras", "r+b") as fh:
        fh.seek(2000)
        b = fh.read(1)
        fh.seek(2000)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="does not match metadata.json"):
        load_artifact(a)
    b = _copy(vgg_artifact, tmp_path / "nometa")
    (b / "metadata.json").unlink()
    with pytest.raises(ArtifactError, match="no metadata.json"):
        read_metadata(b)
    c = _copy(vgg_artifact, tmp_path / "badjson")
    (c / "metadata.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_metadata(c)
    d = _copy(vgg_artifact, tmp_path / "nokey")
    meta = json.loads((d / "metadata.json").read_text())
    del meta["threshold"]
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="lacks required keys: threshold"):
        read_metadata(d)
    e = _copy(vgg_artifact, tmp_path / "nomodel")
    (e / "model.keras").unlink()
    with pytest.raises(ArtifactError, match="no model file"):
        read_metadata(e)
    f = _copy(vgg_artifact, tmp_path / "badsize")
    meta = json.loads((f / "metadata.json").read_text())
    meta["input_size"] = 96
    (f / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="disagrees with metadata input_size"):
        load_artifact(f)


def test_engine_loads_once_and_predicts(engine, vgg_artifact, make_brain, enc):
    loaded = engine.load(vgg_artifact)
    assert engine.load(str(vgg_artifact) + "/") is loaded
    assert loaded.architecture == "vgg16" and loaded.threshold == 0.5
    assert loaded.metadata["input_size"] == 64
    preds = loaded.predict_bytes(_batch(make_brain, enc), batch_size=2)
    assert len(preds) == 5
    for p in preds:
        assert isinstance(p, ImagePrediction) and p.error is None
        assert 0.0 <= p.probability <= 1.0
        assert p.label == ("tumor" if p.probability >= 0.5 else "no_tumor")
    # batch size does not change answers
    again = loaded.predict_bytes(_batch(make_brain, enc), batch_size=32)
    np.testing.assert_allclose([p.probability for p in preds], [p.probability for p in again], atol=1e-5)


def test_engine_matches_keras_model(engine, vgg_artifact, make_brain, enc):
    from ml.intake import decode_image
    from ml.prepare import prepare_image

    loaded = engine.load(vgg_artifact)
    model, meta = load_artifact(vgg_artifact)
    data = _batch(make_brain, enc, 3)
    x = np.stack([prepare_image(decode_image(d).image, 64, True) for d in data]).astype(np.float32)
    ref = model.predict(x, verbose=0).ravel()
    got = [p.probability for p in loaded.predict_bytes(data)]
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_bad_image_in_batch_yields_its_own_error(engine, vgg_artifact, make_brain, enc):
    loaded = engine.load(vgg_artifact)
    good = _batch(make_brain, enc, 3)
    trunc = good[0][: len(good[0]) // 2]
    batch = [good[0], b"not an image at all", good[1], trunc, b"", good[2]]
    preds = loaded.predict_bytes(batch)
    assert [p.error is None for p in preds] == [True, False, True, False, False, True]
    assert preds[1].error == "not a JPEG, PNG or DICOM image"
    assert preds[1].probability is None and preds[1].label is None
    assert preds[3].error == "truncated or corrupt image data"
    assert preds[4].error == "empty file"
    only_good = loaded.predict_bytes([good[0], good[1], good[2]])
    np.testing.assert_allclose([preds[i].probability for i in (0, 2, 5)],
                               [p.probability for p in only_good], atol=1e-5)
    assert loaded.predict_bytes([b"junk"])[0].error == "not a JPEG, PNG or DICOM image"
    assert loaded.predict_bytes([]) == []


@pytest.mark.parametrize("which", ["vgg_artifact", "resnet_artifact"])
def test_gradcam_png_both_architectures(request, engine, which, make_brain, enc):
    loaded = engine.load(request.getfixturevalue(which))
    data = enc(make_brain(size=(150, 110), tumor=True, seed=7), "JPEG")
    png = loaded.gradcam_png(data)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (150, 110)


def test_resnet_engine_predicts(engine, resnet_artifact, make_brain, enc):
    loaded = engine.load(resnet_artifact)
    assert loaded.architecture == "resnet50"
    preds = loaded.predict_bytes(_batch(make_brain, enc, 3) + [b"x"])
    assert [p.error is None for p in preds] == [True, True, True, False]


def test_unload(engine, vgg_artifact):
    a = engine.load(vgg_artifact)
    assert engine.unload(vgg_artifact) is True
    assert engine.unload(vgg_artifact) is False
    b = engine.load(vgg_artifact)
    assert a is not b


def test_bf16_runtime_close_to_keras(vgg_artifact, make_brain, enc):
    from ml.artifacts import load_artifact
    from ml.engine import LoadedModel

    model, meta = load_artifact(vgg_artifact)
    ref = LoadedModel(model, meta, runtime="keras")
    bf = LoadedModel(model, meta, runtime="bf16")
    data = _batch(make_brain, enc, 4)
    a = [p.probability for p in ref.predict_bytes(data)]
    b = [p.probability for p in bf.predict_bytes(data)]
    np.testing.assert_allclose(a, b, atol=0.01)
    assert bf.runtime == "bf16" and ref.runtime == "keras"


def test_engine_after_tf_initialised_logs_and_continues(caplog, vgg_artifact):
    import logging

    import tensorflow as tf

    from ml.engine import InferenceEngine

    tf.constant(1.0) + 1.0  # TF is running in this process by now
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with caplog.at_level(logging.WARNING, logger="ml"):
        eng = InferenceEngine(intra_op_threads=current + 3, inter_op_threads=1)
    assert eng.load(vgg_artifact).architecture == "vgg16"
    assert any("TF already initialised" in r.getMessage() for r in caplog.records)


def test_engine_repeats_the_artifacts_intensity_step(vgg_artifact, make_brain, enc, tmp_path):
    """Serving applies exactly the preprocessing recorded at training: histogram equalisation
    for artifacts trained with it, none for version-1 artifacts (no "intensity" key)."""
    from ml.engine import InferenceEngine
    from ml.intake import decode_image
    from ml.prepare import prepare_image

    data = _batch(make_brain, enc, 4)
    model, _ = load_artifact(vgg_artifact)
    images = [decode_image(d).image for d in data]
    plain = model.predict(np.stack([prepare_image(im, 64, True) for im in images]).astype(np.float32),
                          verbose=0).ravel()
    equalised = model.predict(np.stack([prepare_image(im, 64, True, "equalize") for im in images])
                              .astype(np.float32), verbose=0).ravel()
    assert np.max(np.abs(plain - equalised)) > 1e-4  # the step changes what the model sees

    for name, edit, expected in (("eq", lambda pre: pre.update(intensity="equalize"), equalised),
                                 ("v1", lambda pre: (pre.pop("intensity"), pre.update(version=1)), plain)):
        art = tmp_path / name
        shutil.copytree(vgg_artifact, art)
        meta = json.loads((art / "metadata.json").read_text())
        edit(meta["preprocessing"])
        (art / "metadata.json").write_text(json.dumps(meta))
        got = [p.probability for p in InferenceEngine().load(art).predict_bytes(data)]
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_unknown_intensity_step_is_refused():
    from ml.prepare import prepare_image

    with pytest.raises(ValueError, match="intensity"):
        prepare_image(Image.new("RGB", (40, 40), (90, 90, 90)), 32, False, "sharpen")
