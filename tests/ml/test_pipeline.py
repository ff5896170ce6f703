"""End to end on a tiny generated data set: train -> artifact -> evaluate -> cv, via the CLI."""
import json

import numpy as np
import pytest

from ml.cli import main


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from tests.ml.conftest import brain_image, encode

    d = tmp_path_factory.mktemp("tiny") / "data"
    (d / "yes").mkdir(parents=True)
    (d / "no").mkdir()
    for i in range(14):
        (d / "yes" / f"Y{i}.jpg").write_bytes(encode(brain_image(size=(90, 80), tumor=True, seed=i), "JPEG"))
        (d / "no" / f"{i} no.jpg").write_bytes(encode(brain_image(size=(80, 90), seed=50 + i), "PNG"))
    (d / "yes" / "Y0 copy.jpg").write_bytes((d / "yes" / "Y0.jpg").read_bytes())
    return d


COMMON = ["--arch", "vgg16", "--weights", "none", "--input-size", "32", "--views", "2", "--epochs", "15",
          "--patience", "5", "--threads", "2"]


@pytest.mark.slow
def test_cli_train_evaluate_end_to_end(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "artifact"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), *COMMON,
                 "--fine-tune-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "reload check: max |p - p_reloaded| = 0.00e+00" in printed
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["architecture"] == "vgg16" and meta["input_size"] == 32 and 0 <= meta["threshold"] <= 1
    split = meta["extra"]["split"]
    assert split["test"] > 0 and split["validation"] > 0 and len(split["test_sha256"]) > 0
    assert not set(split["test_sha256"]) & set(split["validation_sha256"])
    assert meta["extra"]["backbone"].startswith("vgg16 random init")
    assert meta["extra"]["phase2"]["epochs_run"] >= 0
    assert (out / "validation_roc.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["evaluate", str(out), "--data", str(tiny_dataset), "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    assert "held-out test images" in printed and "accuracy" in printed and "95% CI" in printed
    rep = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert rep["split"] == "test" and rep["metrics"]["n"] == split["test"]
    assert (out / "evaluation" / "roc.png").exists() and (out / "evaluation" / "confusion.png").exists()
    # evaluate goes through the engine: same probabilities as the reloaded Keras model
    from ml.artifacts import load_artifact
    from ml.intake import decode_image
    from ml.prepare import prepare_image

    model, meta = load_artifact(out)
    # trained with the default histogram equalisation, recorded so that serving repeats it
    assert meta["preprocessing"]["intensity"] == "equalize" and meta["preprocessing"]["version"] == 2
    files = [p["file"] for p in rep["predictions"]]
    x = np.stack([prepare_image(decode_image(open(f, "rb").read()).image, 32, True, "equalize")
                  for f in files]).astype("float32")
    np.testing.assert_allclose(model(x).numpy().ravel(), [p["probability"] for p in rep["predictions"]], atol=1e-5)
    assert main(["evaluate", str(out), "--data", str(tiny_dataset), "--split", "all", "--bootstrap", "50",
                 "--out", str(tmp_path / "all")]) == 0
    assert "includes training images" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_cv(tiny_dataset, tmp_path, capsys):
    assert main(["cv", "--data", str(tiny_dataset), "--folds", "3", *COMMON, "--bootstrap", "100",
                 "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "cv")]) == 0
    printed = capsys.readouterr().out
    assert "3-fold grouped CV" in printed and "roc_auc" in printed
    rep = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert len(rep["first_repeat"]["per_fold"]) == 3
    assert (tmp_path / "cv" / "cv_roc.png").exists()
    assert list((tmp_path / "cache").glob("features_*.npz"))


def test_cli_errors(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert "artifact directory not found" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--weights", "none",
                 "--input-size", "32"]) == 2
    assert "yes/ and no/" in capsys.readouterr().err
