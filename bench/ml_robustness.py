"""Robustness: grouped CV accuracy / AUC on the unchanged images and under each change an upload
can bring (rotation by 90/180/270 degrees, mirror, JPEG quality 30, half size and back,
gamma 0.7 / 1.4; :mod:`ml.robustness`), with the share of labels each change flips.

    .venv/bin/python bench/ml_robustness.py [--repeats 1] [--views 10]

Each change is applied to the decoded test image, which then goes through the serving path
(crop, resize, equalisation, backbone); every fold's model (trained with the augmentation
views of :mod:`ml.augment`) scores its own test fold. Internal figures: one public source.
Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _machine import machine_info  # noqa: E402

DATA = Path("/work/shared/datasets/brain-mri-navoneel")


def main() -> int:
    ap = argparse.ArgumentParser(description="grouped CV robustness benchmark")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--weights", default=str(ROOT / "var" / "weights" / "vgg16_hed_bsds500_notop.weights.h5"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=str(ROOT / "var" / "cache"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    info = machine_info()
    from ml.cv import cross_validate

    rep = cross_validate(args.data, arch="vgg16", weights=args.weights, folds=args.folds, seed=args.seed,
                         repeats=args.repeats, views=args.views, threads=args.threads, robustness=True,
                         cache_dir=args.cache, out=args.out, n_boot=200)
    s = rep["per_fold_mean_sd"]
    print()
    print(f"{rep['backbone']}, {rep['views']} training views, grouped {args.folds}-fold CV x {args.repeats} "
          f"(internal figures, one public source)")
    print(f"{'change':12s} {'accuracy':>9s} {'delta':>7s} {'AUC':>6s} {'flipped':>8s}")
    print(f"{'unchanged':12s} {s['accuracy']['mean']:9.3f} {'':>7s} {s['roc_auc']['mean']:6.3f} {'':>8s}")
    worst = 0.0
    for name, r in rep["robustness"].items():
        print(f"{name:12s} {r['accuracy']:9.3f} {r['delta']:+7.3f} {r['roc_auc']:6.3f} {r['flipped']:8.1%}")
        worst = min(worst, r["delta"])
    print(f"largest accuracy loss: {-worst:.3f} (target: no change costs more than 0.03)")
    print(json.dumps({"bench": "ml_robustness", "backbone": rep["backbone"], "views": rep["views"],
                      "folds": args.folds, "repeats": args.repeats,
                      "unchanged": {"accuracy": s["accuracy"]["mean"], "auc": s["roc_auc"]["mean"]},
                      "changes": rep["robustness"], "largest_loss": -worst, "seconds": rep["seconds"],
                      "machine": info}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
