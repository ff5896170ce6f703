"""Probability calibration: Platt scaling of the head's logit, fitted on out-of-fold predictions.

The class-balanced head's P(tumor) is a good ranking but not a frequency (it is pushed
towards 0.5 for the rarer class and over-confident elsewhere). Platt scaling maps the
head's logit ``z`` to ``sigmoid(a * z + b)``, with ``a, b`` fitted by maximum likelihood on
predictions the head made for images it was not trained on (inner grouped CV). It is
monotone, so it never changes the ranking (ROC AUC); the decision threshold is mapped
through it, so it does not change labels either.

Stored in the artifact metadata as ``{"method": "platt", "a": ..., "b": ..., ...}`` and
applied by :mod:`ml.engine` to every probability it returns.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fit_platt", "apply_calibration", "logit"]

_EPS = 1e-7


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(prob, y) -> dict:
    """``{"method": "platt", "a", "b", "n"}`` fitted on (uncalibrated P, 0/1 label) pairs.

    Unregularised maximum likelihood with Platt's target smoothing (labels become
    (n+ + 1)/(n+ + 2) and 1/(n- + 2)), which keeps ``a`` finite on separable data."""
    from scipy.optimize import minimize

    z = logit(prob)
    y = np.asarray(y, dtype=np.float64).ravel()
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def nll(params):
        a, b = params
        s = a * z + b
        # log(1 + e^s) - t*s, and its gradient, computed stably
        loss = np.logaddexp(0, s) - t * s
        q = 1 / (1 + np.exp(-s))
        return loss.sum(), np.array([((q - t) * z).sum(), (q - t).sum()])

    res = minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in res.x)
    return {"method": "platt", "a": a, "b": b, "n": int(len(y)), "fitted_on": "out-of-fold predictions"}


def apply_calibration(prob, calibration: dict | None) -> np.ndarray:
    """Calibrated P(tumor) for uncalibrated ``prob``; unchanged when ``calibration`` is None."""
    p = np.asarray(prob, dtype=np.float64)
    if not calibration:
        return p
    method = calibration.get("method")
    if method == "platt":
        s = float(calibration["a"]) * logit(p) + float(calibration["b"])
    elif method == "temperature":
        s = logit(p) / float(calibration["temperature"])
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    return 1 / (1 + np.exp(-s))
