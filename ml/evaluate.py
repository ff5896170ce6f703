"""``python -m ml evaluate``: score an artifact on a data set through the serving path.

Images go through :class:`ml.engine.InferenceEngine` exactly as in production (bytes ->
intake -> crop -> model). The stored threshold is used. By default (``--split auto``) only
the artifact's held-out test images are scored when the data set is the one it was trained
on (same fingerprint); ``--split all`` scores every image (training images included: say so).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["evaluate"]


def evaluate(artifact, data, out=None, *, split: str = "auto", batch_size: int = 32, threads: int | None = None,
             n_boot: int = 2000, progress=None) -> dict:
    from .data import load_dataset
    from .engine import InferenceEngine
    from .features import Progress
    from .metrics import binary_metrics, bootstrap_ci
    from .plots import confusion_png, roc_png

    progress = progress or Progress()
    engine = InferenceEngine(threads, 1 if threads else None)
    loaded = engine.load(artifact)
    meta = loaded.metadata
    ds = load_dataset(data)
    fp = ds.fingerprint()
    same = fp == meta.get("dataset_fingerprint")
    test_sha = set(((meta.get("extra") or {}).get("split") or {}).get("test_sha256") or [])
    if split == "auto":
        split = "test" if same and test_sha else "all"
    if split == "test":
        if not test_sha:
            raise ValueError("the artifact records no held-out test images; use --split all")
        idx = [i for i, s in enumerate(ds.samples) if s.sha256 in test_sha]
        note = "held-out test images of this artifact's training run"
    elif split == "all":
        idx = list(range(len(ds.samples)))
        note = ("every image; the artifact was trained on this data set, so this includes training images"
                if same else "every image of a data set other than the training one")
    else:
        raise ValueError("split must be auto, test or all")
    if not idx:
        raise ValueError("no images to evaluate")
    progress(f"evaluating {len(idx)} images ({note}) with threshold {loaded.threshold:.4f}")
    preds = []
    for k in range(0, len(idx), batch_size):
        chunk = [ds.samples[i].path.read_bytes() for i in idx[k:k + batch_size]]
        preds.extend(loaded.predict_bytes(chunk, batch_size=batch_size))
        progress(f"scored {min(len(idx), k + batch_size)}/{len(idx)}")
    ok = [j for j, p in enumerate(preds) if p.error is None]
    errors = [{"file": str(ds.samples[idx[j]].path), "error": preds[j].error} for j, p in enumerate(preds) if p.error]
    y = ds.labels[idx][ok]
    g = ds.groups[idx][ok]
    p = np.array([preds[j].probability for j in ok])
    m = binary_metrics(y, p, loaded.threshold)
    m["ci95"] = bootstrap_ci(y, p, loaded.threshold, groups=g, n_boot=n_boot)
    not_assessed = [str(ds.samples[idx[j]].path) for j in ok if not preds[j].assessed]
    report = {
        "artifact": meta["path"], "architecture": meta["architecture"],
        "backbone": (meta.get("extra") or {}).get("backbone"), "data": str(data), "dataset_fingerprint": fp,
        "same_dataset_as_training": same, "split": split, "note": note, "threshold": loaded.threshold,
        "metrics": m, "errors": errors, "not_assessed": not_assessed,
        "calibrated": bool(meta.get("calibration")),
        "predictions": [{"file": str(ds.samples[idx[j]].path), "label": int(ds.labels[idx[j]]),
                         "probability": preds[j].probability, "ood_score": preds[j].ood_score,
                         "assessed": preds[j].assessed} for j in ok],
    }
    out = Path(out) if out else Path(meta["path"]) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=1, default=float))
    title = f"{meta['architecture']} ({split} split, n={len(y)})"
    roc_png(y, p, out / "roc.png", title=f"ROC: {title}", threshold=loaded.threshold)
    confusion_png(m["confusion"], out / "confusion.png", title=f"Confusion: {title}")
    progress(f"wrote {out / 'evaluation.json'}, roc.png, confusion.png")
    return report


def format_metrics(m: dict) -> str:
    ci = m.get("ci95", {})
    lines = []
    for k in ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc", "brier", "ece"):
        lo, hi = ci.get(k, [float("nan")] * 2)
        lines.append(f"  {k:18s} {m[k]:.3f}   95% CI [{lo:.3f}, {hi:.3f}]")
    c = m["confusion"]
    lines.append(f"  confusion          TN {c['tn']}  FP {c['fp']}  FN {c['fn']}  TP {c['tp']}  (n={m['n']}, "
                 f"threshold {m['threshold']:.4f})")
    return "\n".join(lines)
