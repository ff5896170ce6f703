"""ROC curve and confusion matrix as PNG files (matplotlib, Agg backend, no display)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["roc_png", "confusion_png", "roc_figure"]

TITLE_WIDTH = 40  # characters per title line at fontsize 10 on a ~4 inch figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _title(ax, title: str) -> None:
    """A title wrapped onto lines that fit the figure (a long model label was cut off)."""
    import textwrap

    ax.set_title(textwrap.fill(title, TITLE_WIDTH), fontsize=10)


def _save(fig, path) -> Path:
    plt = _plt()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return path


def roc_png(y_true, prob, path, *, title: str = "ROC", threshold: float | None = None) -> Path:
    return _save(roc_figure(y_true, prob, title=title, threshold=threshold), path)


def roc_figure(y_true, prob, *, title: str = "ROC", threshold: float | None = None):
    from .metrics import binary_metrics, roc_curve_points

    plt = _plt()
    fpr, tpr, _ = roc_curve_points(y_true, prob)
    auc = binary_metrics(y_true, prob)["roc_auc"]
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    ax.plot(fpr, tpr, lw=2, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    if threshold is not None:
        m = binary_metrics(y_true, prob, threshold)
        ax.scatter([1 - m["specificity"]], [m["sensitivity"]], c="red", zorder=3,
                   label=f"threshold {threshold:.3f}")
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    _title(ax, title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_png(confusion: dict, path, *, title: str = "Confusion matrix") -> Path:
    import numpy as np

    plt = _plt()
    cm = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    fig, ax = plt.subplots(figsize=(3.8, 3.4), dpi=110)
    ax.imshow(cm, cmap="Blues")
    labels = ["no tumor", "tumor"]
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=12)
    _title(ax, title)
    return _save(fig, path)
