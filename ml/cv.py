"""``python -m ml cv``: grouped, stratified K-fold cross-validation of the training pipeline.

Per fold, exactly what ``train`` does, on the fold's training part: validation by an inner
grouped K-fold (L2 strength and threshold; or a grouped holdout with ``validation="holdout"``,
always used with fine-tuning), augmentation views, phase one on cached features
(optionally phase two), then the untouched test fold is scored. The frozen backbone is the
same in every fold, so its features (per image and view) are computed once and cached on disk
(``--cache``, shared with ``train``); that is the same computation as recomputing them per fold.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["cross_validate"]


def cross_validate(data, *, arch: str = "vgg16", weights="imagenet", folds: int = 5, seed: int = 0,
                   repeats: int = 1, input_size: int = 160, crop: bool = True, views: int = 2, intensity: str = "equalize",
                   feature_layers=None, pooling: str | None = None, head_optimizer: str = "lbfgs", dropout: float = 0.3, l2: float = 1e-3,
                   head_epochs: int = 300, head_lr: float = 1e-3, head_patience: int = 40,
                   inner_val_fraction: float = 0.2, threshold_method: str = "balanced", c_choice: str = "bag",
                   validation: str = "cv", inner_folds: int = 5,
                   fine_tune_epochs: int = 0, fine_tune_blocks: int = 1, fine_tune_lr: float = 1e-5,
                   threads: int | None = None, cache_dir=None, out=None, n_boot: int = 2000,
                   progress=None) -> dict:
    from .features import Progress
    from .tfutil import configure_threads

    progress = progress or Progress()
    configure_threads(threads, 1 if threads else None)
    from .augment import augment_views
    from .builders import build_classifier, copy_head, feature_model
    from .data import grouped_holdout, grouped_kfold, load_dataset
    from .features import FeatureCache, feature_key, load_arrays, run_model, view_features
    from .head import HeadConfig, fit_head, fit_head_crossval
    from .metrics import binary_metrics, bootstrap_ci, choose_threshold, summarise_folds
    from .train import backbone_label
    from .weights import describe_weights

    t0 = time.monotonic()
    ds = load_dataset(data)
    summary = ds.summary()
    progress(f"{summary['files']} files, {summary['groups']} duplicate groups; {folds}-fold grouped CV x {repeats}")
    arrays, keep = load_arrays(ds, input_size, crop, progress, intensity)
    y = ds.labels[keep]
    g = ds.groups[keep]
    wdesc = describe_weights(arch, weights)
    label = backbone_label(arch, weights)

    def build():
        return build_classifier(arch, weights, input_size, dropout, feature_layers=feature_layers,
                                pooling=pooling, l2=l2, seed=seed)

    model = build()
    shas = [ds.samples[i].sha256 for i in keep]
    fkey = feature_key(arch=arch, w=wdesc, size=input_size, crop=crop, intensity=intensity, seed=seed, layers=feature_layers,
                       pooling=pooling)
    F = view_features(feature_model(model), arrays, shas, views, seed, FeatureCache(cache_dir, fkey), progress)

    hcfg = HeadConfig(epochs=head_epochs, lr=head_lr, dropout=dropout, l2=l2, patience=head_patience, seed=seed,
                      optimizer=head_optimizer, c_choice=c_choice)
    runs = []
    for r in range(repeats):
        rs = seed + r
        fold_metrics, oof_p, oof_shift = [], np.full(len(y), np.nan), np.full(len(y), np.nan)
        for k, (tr, te) in enumerate(grouped_kfold(y, g, folds, seed=rs)):
            assert not set(g[tr]) & set(g[te])
            hcfg.seed = rs * 100 + k
            if validation == "cv" and fine_tune_epochs == 0:
                head, info = fit_head_crossval(F[:, tr], y[tr], g[tr], hcfg, inner_folds=inner_folds,
                                               threshold_method=threshold_method, seed=rs + 100 + k)
                p_te = head.predict(F[0][te], verbose=0).ravel()
                thr = info["threshold"]
                m = binary_metrics(y[te], p_te, thr)
                m["best_epoch"], m["best_C"] = 0, info["best_C"]
                m["alt"] = {"accuracy_at_0.5": binary_metrics(y[te], p_te, 0.5)["accuracy"],
                            "accuracy_at_oof_accuracy_threshold":
                                binary_metrics(y[te], p_te, choose_threshold(y[tr], info["oof_p"], "accuracy"))["accuracy"]}
                fold_metrics.append(m)
                oof_p[te] = p_te
                oof_shift[te] = np.clip(p_te - thr + 0.5, 0, 1)
                progress(f"repeat {r + 1} fold {k + 1}: n={len(te)} acc {m['accuracy']:.3f} auc {m['roc_auc']:.3f} "
                         f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} thr {thr:.3f} C {info['best_C']}")
                continue
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
            m["best_epoch"] = info["best_epoch"]
            m["best_C"] = info.get("best_C")
            m["alt"] = {"accuracy_at_0.5": binary_metrics(y[te], p_te, 0.5)["accuracy"],
                        "accuracy_at_val_accuracy_threshold":
                            binary_metrics(y[te], p_te, choose_threshold(y[val], p_val, "accuracy"))["accuracy"]}
            fold_metrics.append(m)
            oof_p[te] = p_te
            oof_shift[te] = np.clip(p_te - thr + 0.5, 0, 1)
            progress(f"repeat {r + 1} fold {k + 1}: n={len(te)} acc {m['accuracy']:.3f} auc {m['roc_auc']:.3f} "
                     f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} thr {thr:.3f}")
        runs.append({"seed": rs, "folds": fold_metrics, "summary": summarise_folds(fold_metrics),
                     "oof_p": oof_p, "oof_shift": oof_shift})
        s = runs[-1]["summary"]
        progress(f"repeat {r + 1}: accuracy {s['accuracy']['mean']:.3f} ± {s['accuracy']['sd']:.3f}, "
                 f"AUC {s['roc_auc']['mean']:.3f} ± {s['roc_auc']['sd']:.3f}")

    all_folds = [m for run in runs for m in run["folds"]]
    first = runs[0]
    pooled = binary_metrics(y, first["oof_shift"], 0.5)
    pooled["roc_auc"] = binary_metrics(y, first["oof_p"])["roc_auc"]
    pooled["brier"] = binary_metrics(y, first["oof_p"])["brier"]
    ci_thr = bootstrap_ci(y, first["oof_shift"], 0.5, groups=g, n_boot=n_boot, seed=seed)
    ci_raw = bootstrap_ci(y, first["oof_p"], 0.5, groups=g, n_boot=n_boot, seed=seed)
    pooled["ci95"] = {**ci_thr, "roc_auc": ci_raw["roc_auc"], "brier": ci_raw["brier"]}
    report = {
        "data": str(data), "dataset": summary, "architecture": arch, "backbone": label, "weights": wdesc,
        "folds": folds, "repeats": repeats, "seed": seed, "input_size": input_size, "crop": crop, "intensity": intensity, "views": views, "c_choice": c_choice,
        "feature_layers": feature_layers, "pooling": pooling, "head_optimizer": head_optimizer, "dropout": dropout, "l2": l2,
        "threshold_method": threshold_method, "fine_tune_epochs": fine_tune_epochs,
        "validation": validation if fine_tune_epochs == 0 else "holdout", "inner_folds": inner_folds,
        "per_fold_mean_sd": summarise_folds(all_folds),
        "first_repeat": {"per_fold": first["folds"], "mean_sd": first["summary"], "pooled_out_of_fold": pooled},
        "repeat_means": [{k: run["summary"][k]["mean"] for k in run["summary"]} for run in runs],
        "seconds": round(time.monotonic() - t0, 1),
    }
    if out:
        from .plots import confusion_png, roc_png

        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        (o / "cv.json").write_text(json.dumps(report, indent=1, default=float))
        roc_png(y, first["oof_p"], o / "cv_roc.png", title=f"{folds}-fold grouped CV (out-of-fold): {arch}")
        confusion_png(pooled["confusion"], o / "cv_confusion.png", title="CV out-of-fold confusion")
    return report
