"""The trusted head: classifier head + calibration + out-of-distribution gate, fitted together.

One function, :func:`fit_trusted_head`, does for a set of training images (cached features of
every augmentation view) what ``ml.train`` ships and what each fold of ``ml.cv`` measures:

1. the head (phase one, :func:`ml.head.fit_head_crossval`): inner grouped K-fold gives
   out-of-fold P(tumor) of every training image; the head is refitted on all of them;
2. Platt scaling fitted on those out-of-fold probabilities (:mod:`ml.calibration`); the
   decision threshold is mapped through it (labels unchanged, probabilities calibrated);
3. the OOD gate (:mod:`ml.ood`) fitted on every view of every training image, with the
   threshold keeping ``ood_keep`` of the inner folds' held-out images.

:func:`score_trusted` applies all three to features of new images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TrustedHead", "fit_trusted_head", "score_trusted", "DEFAULT_OOD_KEEP"]

DEFAULT_OOD_KEEP = 0.985


@dataclass
class TrustedHead:
    head: object  # keras head model on pooled features
    info: dict  # fit_head_crossval info (without oof_p)
    raw_threshold: float
    calibration: dict  # fit_platt(...) + "threshold" (calibrated) + "brier"/"ece" on the out-of-fold predictions
    ood: object  # ml.ood.OodModel with its threshold
    oof_p: np.ndarray  # calibrated out-of-fold P(tumor) of the training images (inner CV)
    oof_ood: np.ndarray  # held-out OOD distances of the training images (inner CV)
    tta: tuple | None = None  # orientations averaged at scoring time (ml.tta); None: the image as it is

    @property
    def threshold(self) -> float:
        return float(self.calibration["threshold"])


def fit_trusted_head(F_views, y, groups, hcfg, *, inner_folds: int = 5, threshold_method: str = "balanced",
                     seed: int = 0, ood_keep: float = DEFAULT_OOD_KEEP, tta=None, progress=None) -> TrustedHead:
    from .calibration import apply_calibration, fit_platt
    from .data import grouped_kfold
    from .head import fit_head_crossval
    from .metrics import brier_score, expected_calibration_error
    from .ood import fit_ood, heldout_threshold

    F_views = np.asarray(F_views)
    y = np.asarray(y).astype(int)
    head, info = fit_head_crossval(F_views, y, groups, hcfg, inner_folds=inner_folds,
                                   threshold_method=threshold_method, seed=seed, tta=tta, progress=progress)
    oof_raw = info.pop("oof_p")
    raw_thr = float(info["threshold"])
    cal = fit_platt(oof_raw, y)
    oof_cal = apply_calibration(oof_raw, cal)
    cal["threshold"] = float(apply_calibration(np.array([raw_thr]), cal)[0])
    cal["raw_threshold"] = raw_thr
    cal["brier"], cal["ece"] = brier_score(y, oof_cal), expected_calibration_error(y, oof_cal)
    cal["brier_uncalibrated"], cal["ece_uncalibrated"] = brier_score(y, oof_raw), expected_calibration_error(y, oof_raw)
    if progress:
        progress(f"calibration (Platt on out-of-fold predictions): a={cal['a']:.3f} b={cal['b']:.3f}; "
                 f"ECE {cal['ece_uncalibrated']:.3f} -> {cal['ece']:.3f}, Brier {cal['brier_uncalibrated']:.3f} -> "
                 f"{cal['brier']:.3f}; threshold {raw_thr:.3f} -> {cal['threshold']:.3f}")
    folds = grouped_kfold(y, groups, inner_folds, seed=seed)
    thr, heldout = heldout_threshold(F_views, folds, keep=ood_keep)
    ood = fit_ood(F_views.reshape(-1, F_views.shape[2]))
    ood.threshold = thr
    if progress:
        progress(f"OOD gate: Mahalanobis threshold {thr:.2f} keeps {ood_keep:.1%} of held-out training images "
                 f"(Ledoit-Wolf shrinkage {ood.shrinkage:.3f})")
    return TrustedHead(head, info, raw_thr, cal, ood, oof_cal, heldout, tuple(tta) if tta else None)


def score_trusted(th: TrustedHead, F) -> dict:
    """Calibrated P(tumor), labels (1/0), OOD distances and assessed flags.

    ``F``: features (n, d) of the images as they are, or, for a head with ``tta``, (k, n, d):
    the images in each of its k orientations (first: as they are). P(tumor) comes from the
    mean features; the OOD gate scores the image as it arrived."""
    from .calibration import apply_calibration

    F = np.asarray(F, np.float32)
    F_score, F_gate = (F.mean(axis=0), F[0]) if F.ndim == 3 else (F, F)
    raw = th.head(F_score, training=False).numpy().ravel() if len(F_score) else np.zeros(0)
    p = apply_calibration(raw, th.calibration)
    dist, assessed = th.ood.assessed(F_gate)
    return {"p_raw": raw, "p": p, "label": (p >= th.threshold).astype(int), "ood": dist, "assessed": assessed}
