import numpy as np
import pytest

from ml.data import grouped_holdout, grouped_kfold, load_dataset
from ml.metrics import binary_metrics, bootstrap_ci, choose_threshold, summarise_folds


@pytest.fixture
def dataset_dir(tmp_path, make_brain, enc):
    d = tmp_path / "ds"
    (d / "yes").mkdir(parents=True)
    (d / "no").mkdir()
    for i in range(10):
        (d / "yes" / f"Y{i}.jpg").write_bytes(enc(make_brain(size=(110 + i, 100), tumor=True, seed=i), "JPEG"))
        (d / "no" / f"{i} no.jpg").write_bytes(enc(make_brain(size=(100, 90 + i), seed=100 + i), "JPEG"))
    # byte-identical copies, a re-encoded near-duplicate (PNG named .JPG, resized), and a palette PNG
    (d / "yes" / "copy of Y1.jpg").write_bytes((d / "yes" / "Y1.jpg").read_bytes())
    (d / "no" / "dup 3.jpeg").write_bytes((d / "no" / "3 no.jpg").read_bytes())
    again = make_brain(size=(112, 100), tumor=True, seed=2).resize((224, 203))
    (d / "yes" / "Y2 again.JPG").write_bytes(enc(again, "PNG"))
    (d / "no" / "notes.txt").write_text("not an image")
    return d


def test_listing_and_grouping(dataset_dir):
    ds = load_dataset(dataset_dir)
    names = {s.path.name: s for s in ds.samples}
    assert len(ds.samples) == 23 and "notes.txt" not in names
    assert names["Y1.jpg"].group == names["copy of Y1.jpg"].group
    assert names["3 no.jpg"].group == names["dup 3.jpeg"].group
    assert names["Y2.jpg"].group == names["Y2 again.JPG"].group  # near-identical re-encoding
    assert names["Y1.jpg"].group != names["Y2.jpg"].group
    s = ds.summary()
    assert s["tumor"] == 12 and s["no_tumor"] == 11 and s["distinct_contents"] == 21 and s["groups"] == 20
    assert len(s["fingerprint"]) == 64


def test_fingerprint_independent_of_names(dataset_dir, tmp_path):
    a = load_dataset(dataset_dir).fingerprint()
    (dataset_dir / "yes" / "Y0.jpg").rename(dataset_dir / "yes" / "renamed.jpg")
    assert load_dataset(dataset_dir).fingerprint() == a


def test_csv_listing(dataset_dir, tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\nds/yes/Y0.jpg,1\nds/no/0 no.jpg,no\n" + f"{dataset_dir / 'yes' / 'Y1.jpg'},tumor\n")
    ds = load_dataset(csv)
    assert [s.label for s in ds.samples] == [1, 0, 1]
    bad = tmp_path / "bad.csv"
    bad.write_text("ds/yes/Y0.jpg,maybe\n")
    with pytest.raises(ValueError, match="unknown label"):
        load_dataset(bad)
    with pytest.raises(ValueError, match="yes/ and no/"):
        load_dataset(tmp_path)


def test_grouped_splits_never_split_twins(dataset_dir):
    ds = load_dataset(dataset_dir)
    y, g = ds.labels, ds.groups
    shas = np.array([s.sha256 for s in ds.samples])
    for seed in range(3):
        folds = grouped_kfold(y, g, 4, seed=seed)
        seen = np.concatenate([te for _, te in folds])
        assert sorted(seen.tolist()) == list(range(len(y)))
        for tr, te in folds:
            assert not set(g[tr]) & set(g[te])
            assert not set(shas[tr]) & set(shas[te])
            assert set(y[te]) == {0, 1}
        tr, ho = grouped_holdout(y, g, 0.25, seed=seed)
        assert not set(g[tr]) & set(g[ho]) and len(ho) > 0


def test_binary_metrics_known_values():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.6, 0.1, 0.7])
    m = binary_metrics(y, p, 0.5)
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == 0.75 and m["sensitivity"] == 0.75 and m["specificity"] == 0.75
    from sklearn.metrics import brier_score_loss, roc_auc_score

    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    ties = binary_metrics([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])
    assert ties["roc_auc"] == pytest.approx(roc_auc_score([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]))


def test_threshold_and_bootstrap():
    rng = np.random.default_rng(0)
    y = np.array([0] * 40 + [1] * 40)
    p = np.clip(np.concatenate([rng.normal(0.3, 0.1, 40), rng.normal(0.45, 0.1, 40)]), 0, 1)
    t = choose_threshold(y, p)
    m = binary_metrics(y, p, t)
    assert m["sensitivity"] + m["specificity"] >= binary_metrics(y, p, 0.5)["sensitivity"] + \
        binary_metrics(y, p, 0.5)["specificity"]
    assert 0.3 < t < 0.45
    ci = bootstrap_ci(y, p, t, n_boot=300, seed=1)
    for k in ("accuracy", "roc_auc", "sensitivity", "specificity", "brier"):
        lo, hi = ci[k]
        assert lo <= m[k] <= hi and lo < hi
    assert choose_threshold([1, 1], [0.2, 0.3]) == 0.5
    s = summarise_folds([m, m])
    assert s["accuracy"]["mean"] == pytest.approx(m["accuracy"]) and s["accuracy"]["sd"] == 0


def test_augmentation_views_cover_every_orientation_and_are_deterministic_per_image(make_brain):
    from ml.augment import augment_views, view_of
    from ml.prepare import prepare_image

    arrs = np.stack([prepare_image(make_brain(tumor=i % 2 == 0, seed=i), 48) for i in range(3)])
    keys = ["a" * 64, "b" * 64, "c" * 64]
    v = augment_views(arrs, 10, seed=0, keys=keys)
    assert len(v) == 10 and all(x.shape == arrs.shape and x.dtype == np.uint8 for x in v)
    assert np.array_equal(v[0], arrs) and np.array_equal(v[1], arrs[:, :, ::-1])
    assert np.array_equal(v[2], np.rot90(arrs, 1, axes=(1, 2))) and np.array_equal(v[3], arrs[:, ::-1, ::-1])
    assert np.array_equal(v[4], np.rot90(arrs, 3, axes=(1, 2)))
    orientations = {v[k][0].tobytes() for k in range(8)}
    assert len(orientations) == 8  # the eight orientations, all different
    assert not np.array_equal(v[8], v[9]) and all(v[8][0].tobytes() != o for o in orientations)
    # same image + key -> same view, whatever else is in the batch (so features can be cached)
    again = augment_views(arrs[1:2], 10, seed=0, keys=keys[1:2])
    assert np.array_equal(again[8][0], v[8][1]) and np.array_equal(view_of(arrs[1], 9, 0, keys[1]), v[9][1])


def test_feature_cache_round_trip(tmp_path):
    from ml.features import FeatureCache, feature_key

    k = feature_key(arch="vgg16", size=32)
    assert k != feature_key(arch="vgg16", size=64)
    c = FeatureCache(tmp_path, k)
    c.put("ab" * 32, 1, np.arange(4))
    c.save()
    c2 = FeatureCache(tmp_path, k)
    np.testing.assert_array_equal(c2.get("ab" * 32, 1), np.arange(4, dtype=np.float32))
    assert c2.get("ab" * 32, 0) is None and FeatureCache(None, k).get("x", 0) is None


def test_balanced_threshold_is_half_whatever_the_data():
    assert choose_threshold([0, 1, 1, 0], [0.9, 0.8, 0.95, 0.7], "balanced") == 0.5
    with pytest.raises(ValueError):
        choose_threshold([0, 1], [0.2, 0.8], "median")


def test_bagged_head_is_the_mean_of_the_l2_path():
    """c_choice="bag": the head's weights are the average of the logistic fits over every C."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    from ml.head import HeadConfig, fit_head

    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 30)
    F = rng.normal(size=(60, 6)) + y[:, None] * np.array([1.5, 0, 0, -1, 0, 0])
    cfg = HeadConfig(Cs=(0.01, 0.1, 1.0), c_choice="bag")
    head, info = fit_head(F, y, F[:20], y[:20], cfg)
    assert info["best_C"] == "bag"
    Z = (F - F.mean(0)) / F.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [LogisticRegression(C=c, class_weight="balanced", max_iter=5000, tol=1e-6).fit(Z, y) for c in cfg.Cs]
    w = np.mean([f.coef_[0] for f in fits], 0)
    b = np.mean([f.intercept_[0] for f in fits])
    expected = 1 / (1 + np.exp(-(Z @ w + b)))
    np.testing.assert_allclose(head(F.astype(np.float32)).numpy().ravel(), expected, atol=1e-4)
    best, info_best = fit_head(F, y, F[:20], y[:20], HeadConfig(Cs=(0.01, 0.1, 1.0), c_choice="best"))
    assert info_best["best_C"] in (0.01, 0.1, 1.0)
