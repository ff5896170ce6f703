"""``python -m ml cv``: grouped, stratified K-fold cross-validation of the training pipeline.

Per fold, exactly what ``train`` does, on the fold's training part (:func:`ml.trust.fit_trusted_head`):
inner grouped K-fold for the head's out-of-fold predictions, Platt calibration on them, the
OOD gate with its held-out threshold; then the untouched test fold is scored: calibrated
accuracy / AUC / Brier / ECE, the share of test images the OOD gate lets through, and the same
under each change of :mod:`ml.robustness` (rotations, mirror, JPEG q30, half size, gamma).
The frozen backbone is the same in every fold, so its features (per image, augmentation view
and change) are computed once and cached on disk (``--cache``, shared with ``train``); that
is the same computation as recomputing them per fold. With fine-tuning (or
``validation="holdout"``) the older holdout path runs instead (no calibration, OOD or
robustness figures).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .tta import TTA_ORIENTATIONS

__all__ = ["cross_validate", "trusted_cv", "card_metrics"]

CV_KEYS = {"accuracy": "accuracy", "auc": "roc_auc", "sensitivity": "sensitivity", "specificity": "specificity",
           "brier": "brier", "ece": "ece"}


def trusted_cv(F, y, g, hcfg, *, folds: int = 5, repeats: int = 1, seed: int = 0, inner_folds: int = 5,
               threshold_method: str = "balanced", F_changes: dict | None = None, ood_keep: float | None = None,
               n_boot: int = 2000, tta=None, progress=None) -> dict:
    """Grouped K-fold x ``repeats`` of the trusted head on cached features.

    ``F``: (views, n, d); ``F_changes``: {change name: features of the changed images, (n, d), or
    (k, n, d) in each ``tta`` orientation}. With ``tta`` (orientations, :mod:`ml.tta`) test images
    are scored as the engine scores them: the mean over those views."""
    from .data import grouped_kfold
    from .metrics import binary_metrics, summarise_folds
    from .trust import DEFAULT_OOD_KEEP, fit_trusted_head, score_trusted

    F_changes = F_changes or {}
    y = np.asarray(y).astype(int)
    runs, changes = [], {c: {"accuracy": [], "roc_auc": [], "delta": [], "flipped": 0, "n": 0} for c in F_changes}
    ood_kept, ood_n = 0, 0
    for r in range(repeats):
        rs = seed + r
        fold_metrics, oof_p, oof_shift = [], np.full(len(y), np.nan), np.full(len(y), np.nan)
        for k, (tr, te) in enumerate(grouped_kfold(y, g, folds, seed=rs)):
            assert not set(g[tr]) & set(g[te])
            hcfg.seed = rs * 100 + k
            th = fit_trusted_head(F[:, tr], y[tr], g[tr], hcfg, inner_folds=inner_folds,
                                  threshold_method=threshold_method, seed=rs + 100 + k,
                                  ood_keep=ood_keep or DEFAULT_OOD_KEEP, tta=tta)
            s = score_trusted(th, F[list(tta)][:, te] if tta else F[0][te])
            m = binary_metrics(y[te], s["p"], th.threshold)
            m["best_C"] = th.info["best_C"]
            m["uncalibrated"] = {k2: binary_metrics(y[te], s["p_raw"], th.raw_threshold)[k2] for k2 in ("brier", "ece")}
            m["alt"] = {"accuracy_at_calibrated_0.5": binary_metrics(y[te], s["p"], 0.5)["accuracy"]}
            m["ood_assessed"] = float(s["assessed"].mean())
            ood_kept += int(s["assessed"].sum())
            ood_n += len(te)
            for c, Fc in F_changes.items():
                sc = score_trusted(th, Fc[:, te] if Fc.ndim == 3 else Fc[te])
                mc = binary_metrics(y[te], sc["p"], th.threshold)
                changes[c]["accuracy"].append(mc["accuracy"])
                changes[c]["roc_auc"].append(mc["roc_auc"])
                changes[c]["delta"].append(mc["accuracy"] - m["accuracy"])
                changes[c]["flipped"] += int((sc["label"] != s["label"]).sum())
                changes[c]["n"] += len(te)
            fold_metrics.append(m)
            oof_p[te] = s["p"]
            oof_shift[te] = np.clip(s["p"] - th.threshold + 0.5, 0, 1)
            if progress:
                progress(f"repeat {r + 1} fold {k + 1}: n={len(te)} acc {m['accuracy']:.3f} auc {m['roc_auc']:.3f} "
                         f"ece {m['ece']:.3f} (uncalibrated {m['uncalibrated']['ece']:.3f}) "
                         f"sens {m['sensitivity']:.3f} "
                         f"spec {m['specificity']:.3f} thr {th.threshold:.3f} OOD-assessed {m['ood_assessed']:.3f}")
            if hasattr(progress, "part"):
                progress.part(r * folds + k + 1, repeats * folds)
        runs.append({"seed": rs, "folds": fold_metrics, "summary": summarise_folds(fold_metrics),
                     "oof_p": oof_p, "oof_shift": oof_shift})
        if progress:
            sm = runs[-1]["summary"]
            progress(f"repeat {r + 1}: accuracy {sm['accuracy']['mean']:.3f} ± {sm['accuracy']['sd']:.3f}, "
                     f"AUC {sm['roc_auc']['mean']:.3f} ± {sm['roc_auc']['sd']:.3f}, ECE {sm['ece']['mean']:.3f}")
    all_folds = [m for run in runs for m in run["folds"]]
    first = runs[0]
    pooled = _pooled_out_of_fold(y, g, first, n_boot=n_boot, seed=seed)
    summary = summarise_folds(all_folds)
    robustness = {c: {"accuracy": float(np.mean(v["accuracy"])), "roc_auc": float(np.mean(v["roc_auc"])),
                      "delta": float(np.mean(v["delta"])), "flipped": v["flipped"] / max(1, v["n"])}
                  for c, v in changes.items()}
    return {"folds": folds, "repeats": repeats, "seed": seed, "per_fold_mean_sd": summary,
            "first_repeat": {"per_fold": first["folds"], "mean_sd": first["summary"], "pooled_out_of_fold": pooled,
                             "oof_p": first["oof_p"]},
            "repeat_means": [{k: run["summary"][k]["mean"] for k in run["summary"]} for run in runs],
            "uncalibrated_mean": {k: float(np.mean([m["uncalibrated"][k] for m in all_folds]))
                                  for k in ("brier", "ece")},
            "accuracy_at_calibrated_0.5": float(np.mean([m["alt"]["accuracy_at_calibrated_0.5"] for m in all_folds])),
            "robustness": robustness, "ood_heldout_assessed": ood_kept / max(1, ood_n)}


def _pooled_out_of_fold(y, g, run: dict, *, n_boot: int, seed: int) -> dict:
    """Metrics of one repeat's pooled out-of-fold predictions, with grouped bootstrap 95 % CIs:
    threshold metrics on the fold-threshold-shifted P, ranking and calibration on P itself."""
    from .metrics import binary_metrics, bootstrap_ci

    pooled = binary_metrics(y, run["oof_shift"], 0.5)
    raw = binary_metrics(y, run["oof_p"])
    for k in ("roc_auc", "brier", "ece"):
        pooled[k] = raw[k]
    ci_thr = bootstrap_ci(y, run["oof_shift"], 0.5, groups=g, n_boot=n_boot, seed=seed)
    ci_raw = bootstrap_ci(y, run["oof_p"], 0.5, groups=g, n_boot=n_boot, seed=seed)
    pooled["ci95"] = {**ci_thr, "roc_auc": ci_raw["roc_auc"], "brier": ci_raw["brier"], "ece": ci_raw["ece"]}
    return pooled


def card_metrics(rep: dict) -> dict:
    """The model card's ``metrics["cv"]`` / ``["robustness"]`` entries from a :func:`trusted_cv` report."""
    s, pooled = rep["per_fold_mean_sd"], rep["first_repeat"]["pooled_out_of_fold"]
    cv = {name: {"mean": s[key]["mean"], "sd": s[key]["sd"], "pooled": pooled[key], "ci95": list(pooled["ci95"][key])}
          for name, key in CV_KEYS.items()}
    cv.update({"folds": rep["folds"], "repeats": rep["repeats"],
               "ci95_method": "grouped bootstrap (duplicate groups) of the first repeat's pooled out-of-fold "
                              "predictions",
               "mean_of": "test folds (ECE of a ~50-image fold is biased upwards by sparse bins: "
                          "'pooled' is the ECE of all out-of-fold predictions)"})
    robustness = {c: {"accuracy": v["accuracy"], "delta": v["delta"], "flipped": v["flipped"], "auc": v["roc_auc"]}
                  for c, v in rep["robustness"].items()}
    return {"cv": cv, "robustness": robustness}


def cross_validate(data, *, arch: str = "vgg16", weights="imagenet", folds: int = 5, seed: int = 0,
                   repeats: int = 1, input_size: int = 160, crop: bool = True, views: int = 10,
                   intensity: str = "equalize", feature_layers=None, pooling: str | None = None,
                   head_optimizer: str = "lbfgs", dropout: float = 0.3, l2: float = 1e-3,
                   head_epochs: int = 300, head_lr: float = 1e-3, head_patience: int = 40,
                   inner_val_fraction: float = 0.2, threshold_method: str = "balanced", c_choice: str = "bag",
                   validation: str = "cv", inner_folds: int = 5, robustness: bool = False,
                   fine_tune_epochs: int = 0, fine_tune_blocks: int = 1, fine_tune_lr: float = 1e-5,
                   threads: int | None = None, cache_dir=None, out=None, n_boot: int = 2000,
                   tta=TTA_ORIENTATIONS, progress=None) -> dict:
    """Grouped K-fold CV of the training recipe on ``data``; the report (and, with ``out``, cv.json
    and ROC / confusion plots). ``tta``: orientations averaged when scoring (``()``: none)."""
    from .features import Progress
    from .head import HeadConfig
    from .tfutil import configure_threads

    progress = progress or Progress()
    configure_threads(threads, 1 if threads else None)
    tta = tuple(tta or ()) if tta and views > max(tta) else ()  # the rotations must be cached views
    t0 = time.monotonic()
    fx = _cv_features(data, arch=arch, weights=weights, seed=seed, input_size=input_size, crop=crop, views=views,
                      intensity=intensity, feature_layers=feature_layers, pooling=pooling, dropout=dropout, l2=l2,
                      cache_dir=cache_dir, progress=progress)
    progress(f"{folds}-fold grouped CV x {repeats}")
    hcfg = HeadConfig(epochs=head_epochs, lr=head_lr, dropout=dropout, l2=l2, patience=head_patience, seed=seed,
                      optimizer=head_optimizer, c_choice=c_choice)
    settings = {"data": str(data), "dataset": fx["summary"], "architecture": arch, "backbone": fx["label"],
                "weights": fx["weights"], "input_size": input_size, "crop": crop, "intensity": intensity,
                "views": views,
                "c_choice": c_choice, "feature_layers": feature_layers, "pooling": pooling,
                "head_optimizer": head_optimizer, "dropout": dropout, "l2": l2, "threshold_method": threshold_method,
                "fine_tune_epochs": fine_tune_epochs,
                "validation": validation if fine_tune_epochs == 0 else "holdout", "inner_folds": inner_folds,
                "tta": list(tta or ())}
    y, g, F = fx["labels"], fx["groups"], fx["features"]
    if validation == "cv" and fine_tune_epochs == 0:
        F_changes = {}
        if robustness:
            from .robustness import change_features

            F_changes = change_features(fx["fmodel"], fx["ds"], fx["keep"], input_size, crop, intensity, fx["cache"],
                                        progress, orientations=tta or None)
        rep = trusted_cv(F, y, g, hcfg, folds=folds, repeats=repeats, seed=seed, inner_folds=inner_folds,
                         threshold_method=threshold_method, F_changes=F_changes, n_boot=n_boot, tta=tta or None,
                         progress=progress)
        oof_p = rep["first_repeat"].pop("oof_p")
    else:
        from .features import finish_intensity

        rep, oof_p = _holdout_cv(F, finish_intensity(fx["arrays"], intensity), y, g, fx["shas"], fx["build"], hcfg,
                                 folds=folds, repeats=repeats, seed=seed, views=views, arch=arch, intensity=intensity,
                                 inner_val_fraction=inner_val_fraction, threshold_method=threshold_method,
                                 fine_tune_epochs=fine_tune_epochs, fine_tune_blocks=fine_tune_blocks,
                                 fine_tune_lr=fine_tune_lr, n_boot=n_boot, progress=progress)
    report = {**settings, **rep, "seconds": round(time.monotonic() - t0, 1)}
    if out:
        _write_report(Path(out), report, y, oof_p, title=f"{folds}-fold grouped CV (out-of-fold): {arch}")
    return report


def _cv_features(data, *, arch, weights, seed, input_size, crop, views, intensity, feature_layers, pooling, dropout,
                 l2, cache_dir, progress) -> dict:
    """The data set decoded once and the frozen backbone's features of every image and view (cached)."""
    from .builders import build_classifier, feature_model
    from .data import load_dataset
    from .features import FeatureCache, feature_key, load_arrays, view_features
    from .train import backbone_label
    from .weights import describe_weights

    ds = load_dataset(data)
    summary = ds.summary()
    progress(f"{summary['files']} files, {summary['groups']} duplicate groups")
    arrays, keep = load_arrays(ds, input_size, crop, progress, "none")
    wdesc = describe_weights(arch, weights)

    def build():
        return build_classifier(arch, weights, input_size, dropout, feature_layers=feature_layers,
                                pooling=pooling, l2=l2, seed=seed)

    shas = [ds.samples[i].sha256 for i in keep]
    cache = FeatureCache(cache_dir, feature_key(arch=arch, w=wdesc, size=input_size, crop=crop, intensity=intensity,
                                                seed=seed, layers=feature_layers, pooling=pooling))
    fmodel = feature_model(build())
    features = view_features(fmodel, arrays, shas, views, seed, cache, progress, intensity=intensity)
    return {"ds": ds, "summary": summary, "arrays": arrays, "keep": keep, "labels": ds.labels[keep],
            "groups": ds.groups[keep], "shas": shas, "cache": cache, "fmodel": fmodel, "build": build,
            "features": features, "weights": wdesc, "label": backbone_label(arch, weights)}


def _write_report(out: Path, report: dict, y, oof_p, *, title: str) -> None:
    from .plots import confusion_png, roc_png

    out.mkdir(parents=True, exist_ok=True)
    (out / "cv.json").write_text(json.dumps(report, indent=1, default=float))
    roc_png(y, oof_p, out / "cv_roc.png", title=title)
    confusion_png(report["first_repeat"]["pooled_out_of_fold"]["confusion"], out / "cv_confusion.png",
                  title="CV out-of-fold confusion")


def _holdout_cv(F, arrays, y, g, shas, build, hcfg, *, folds, repeats, seed, views, arch, intensity,
                inner_val_fraction, threshold_method, fine_tune_epochs, fine_tune_blocks, fine_tune_lr, n_boot,
                progress):
    """The older path: a grouped validation split per fold (threshold, early stopping), optional fine-tuning."""
    from .augment import augment_views
    from .builders import copy_head
    from .data import grouped_holdout, grouped_kfold
    from .features import run_model
    from .head import fit_head
    from .metrics import binary_metrics, choose_threshold, summarise_folds

    runs = []
    for r in range(repeats):
        rs = seed + r
        fold_metrics, oof_p, oof_shift = [], np.full(len(y), np.nan), np.full(len(y), np.nan)
        for k, (tr, te) in enumerate(grouped_kfold(y, g, folds, seed=rs)):
            hcfg.seed = rs * 100 + k
            a_rel, v_rel = grouped_holdout(y[tr], g[tr], inner_val_fraction, seed=rs + 100 + k)
            tin, val = tr[a_rel], tr[v_rel]
            Ftr = np.concatenate([F[v][tin] for v in range(F.shape[0])])
            ytr = np.concatenate([y[tin]] * F.shape[0])
            head, info = fit_head(Ftr, ytr, F[0][val], y[val], hcfg)
            if fine_tune_epochs > 0:
                from .finetune import fine_tune

                fm = build()
                copy_head(head, fm)
                tviews = augment_views(arrays[tin], views, seed=seed, keys=[shas[i] for i in tin])
                fine_tune(fm, arch, tviews, y[tin], arrays[val], y[val], blocks=fine_tune_blocks,
                          epochs=fine_tune_epochs, lr=fine_tune_lr, seed=rs, progress=progress)
                p_val = run_model(fm, arrays[val]).ravel()
                p_te = run_model(fm, arrays[te]).ravel()
                del fm
            else:
                p_val = head.predict(F[0][val], verbose=0).ravel()
                p_te = head.predict(F[0][te], verbose=0).ravel()
            thr = choose_threshold(y[val], p_val, threshold_method)
            m = binary_metrics(y[te], p_te, thr)
            m["best_epoch"], m["best_C"] = info["best_epoch"], info.get("best_C")
            fold_metrics.append(m)
            oof_p[te] = p_te
            oof_shift[te] = np.clip(p_te - thr + 0.5, 0, 1)
            progress(f"repeat {r + 1} fold {k + 1}: n={len(te)} acc {m['accuracy']:.3f} auc {m['roc_auc']:.3f} "
                     f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} thr {thr:.3f}")
        runs.append({"seed": rs, "folds": fold_metrics, "summary": summarise_folds(fold_metrics),
                     "oof_p": oof_p, "oof_shift": oof_shift})
    first = runs[0]
    pooled = _pooled_out_of_fold(y, g, first, n_boot=n_boot, seed=seed)
    rep = {"folds": folds, "repeats": repeats, "seed": seed,
           "per_fold_mean_sd": summarise_folds([m for run in runs for m in run["folds"]]),
           "first_repeat": {"per_fold": first["folds"], "mean_sd": first["summary"], "pooled_out_of_fold": pooled},
           "repeat_means": [{k: run["summary"][k]["mean"] for k in run["summary"]} for run in runs]}
    return rep, first["oof_p"]
