"""Model card: an artifact's metadata dict -> the sections a clinician reads. Pure Python.

Reads both the original metadata (``metrics.validation``, ``extra.backbone`` /
``extra.weights`` / ``extra.dataset``) and the newer keys (``metrics.cv``,
``metrics.robustness``, ``metrics.ood``, ``calibration``, ``ood``, ``training_data``,
``backbone``). Whatever a version's metadata lacks is shown as :data:`NOT_RECORDED`; nothing
is written by hand per version.
"""
from __future__ import annotations

import math

__all__ = ["NOT_RECORDED", "INTENDED_USE", "build_card", "headline_metrics", "gate_shortfalls", "backbone_info"]

NOT_RECORDED = "not recorded"
INTENDED_USE = [
    "Second opinion on axial brain MRI slices (one 2-D image at a time): tumor / no tumor.",
    "Not for diagnosis. Every result is reviewed by a clinician, who decides.",
    "Not for other body parts, other imaging (CT, X-ray, photographs), 3-D volumes, or children's scans "
    "unless the training data below says they were included.",
]
ARCH_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50"}


def _num(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value, digits: int = 3) -> str:
    v = _num(value)
    return NOT_RECORDED if v is None else f"{v:.{digits}f}"


def _pct(value) -> str:
    v = _num(value)
    return NOT_RECORDED if v is None else f"{100 * v:.1f} %"


def _ci(pair) -> str:
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_num(x) is not None for x in pair):
        return f"{_num(pair[0]):.3f} – {_num(pair[1]):.3f}"
    return NOT_RECORDED


def _text(value) -> str:
    if value is None or value == "" or isinstance(value, (dict, list)):
        return NOT_RECORDED
    return str(value)


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _metrics(meta) -> dict:
    return _dict(meta.get("metrics"))


def headline_metrics(meta: dict) -> dict:
    """Accuracy and ROC AUC the activation gate compares: grouped-CV means, else validation."""
    cv = _dict(_metrics(meta).get("cv"))
    if cv:
        return {"accuracy": _num(_dict(cv.get("accuracy")).get("mean")),
                "auc": _num(_dict(cv.get("auc")).get("mean")), "source": "grouped cross-validation (mean)"}
    val = _dict(_metrics(meta).get("validation"))
    if val:
        return {"accuracy": _num(val.get("accuracy")), "auc": _num(val.get("roc_auc", val.get("auc"))),
                "source": "validation"}
    flat = _metrics(meta)
    return {"accuracy": _num(flat.get("accuracy")), "auc": _num(flat.get("roc_auc", flat.get("auc"))),
            "source": "metrics"}


def gate_shortfalls(meta: dict, min_auc: float, min_accuracy: float) -> list[str]:
    """Why this version falls below the activation floors ([] when it clears them). Missing counts as below."""
    head = headline_metrics(meta)
    out = []
    for key, name, floor in (("auc", "ROC AUC", min_auc), ("accuracy", "accuracy", min_accuracy)):
        value = head[key]
        if value is None:
            out.append(f"{name} is not recorded (floor {floor:.2f})")
        elif value < floor:
            out.append(f"{name} {value:.3f} ({head['source']}) is below the floor {floor:.2f}")
    return out


def backbone_info(meta: dict) -> dict:
    """``{"name", "imagenet": True/False/None, "source"}`` from the new key or the old extra record."""
    new = _dict(meta.get("backbone"))
    if new:
        imagenet = new.get("imagenet") if isinstance(new.get("imagenet"), bool) else None
        return {"name": _text(new.get("name")), "imagenet": imagenet, "source": _text(new.get("source"))}
    extra = _dict(meta.get("extra"))
    label = extra.get("backbone") if isinstance(extra.get("backbone"), str) else None
    weights = _dict(extra.get("weights"))
    kind = weights.get("kind")
    imagenet = {"imagenet": True, "none": False}.get(kind)
    if imagenet is None and label:
        imagenet = False if ("not imagenet" in label.lower() or "hed" in label.lower()) else None
    source = NOT_RECORDED
    if kind == "file":
        source = f"local file {weights.get('file', '?')} (sha256 {str(weights.get('sha256', '?'))[:12]}…)"
    elif kind == "imagenet":
        source = "Keras applications ImageNet weights"
    elif kind == "none":
        source = "random initialisation (no pretrained weights)"
    return {"name": label or NOT_RECORDED, "imagenet": imagenet, "source": source}


def _training_rows(meta) -> list[list[str]]:
    td = _dict(meta.get("training_data"))
    if not td:  # older artifacts: the training run's data set summary
        ds = _dict(_dict(meta.get("extra")).get("dataset"))
        td = {"source": ds.get("source"), "n_images": ds.get("files"), "n_unique": ds.get("distinct_contents"),
              "n_tumor": ds.get("tumor"), "n_no_tumor": ds.get("no_tumor"), "date": None}
    return [["Source", _text(td.get("source"))], ["Images", _text(td.get("n_images"))],
            ["Distinct images", _text(td.get("n_unique"))], ["Tumor", _text(td.get("n_tumor"))],
            ["No tumor", _text(td.get("n_no_tumor"))], ["Date", _text(td.get("date"))],
            ["Fingerprint (SHA-256)", _text(meta.get("dataset_fingerprint"))]]


def _cv_table(meta):
    cv = _dict(_metrics(meta).get("cv"))
    if not cv:
        return None
    names = (("accuracy", "Accuracy"), ("auc", "ROC AUC"), ("sensitivity", "Sensitivity"),
             ("specificity", "Specificity"), ("brier", "Brier score (lower is better)"),
             ("ece", "Expected calibration error (lower is better)"))
    rows = [[label, _fmt(_dict(cv.get(k)).get("mean")), _ci(_dict(cv.get(k)).get("ci95"))]
            for k, label in names if k in cv or k in ("accuracy", "auc", "brier", "ece")]
    return {"head": ["Metric", "Mean", "95 % interval"], "rows": rows,
            "note": f"{_text(cv.get('folds'))} folds × {_text(cv.get('repeats'))} repeats, images grouped "
                    "so that copies of one scan never sit on both sides"}


def _validation_table(meta):
    val = _dict(_metrics(meta).get("validation"))
    if not val:
        return None
    ci = _dict(val.get("ci95"))
    names = (("accuracy", "Accuracy"), ("roc_auc", "ROC AUC"), ("sensitivity", "Sensitivity"),
             ("specificity", "Specificity"), ("brier", "Brier score (lower is better)"))
    rows = [[label, _fmt(val.get(k)), _ci(ci.get(k))] for k, label in names]
    return {"head": ["Metric", "Value", "95 % interval"], "rows": rows,
            "note": f"{_text(val.get('source'))}; n = {_text(val.get('n'))}"}


def _robustness(meta):
    rob = _dict(_metrics(meta).get("robustness"))
    if not rob:
        return None
    rows = [[str(change), _fmt(_dict(r).get("accuracy")), _fmt(_dict(r).get("delta")), _pct(_dict(r).get("flipped"))]
            for change, r in rob.items()]
    return {"head": ["Change to the image", "Accuracy", "Change in accuracy", "Results flipped"], "rows": rows}


def _tta_text(meta: dict) -> str:
    orientations = _dict(meta.get("tta")).get("orientations")
    if not orientations:
        return "none: each image is scored as it arrived"
    return (f"each image is scored in {len(orientations)} rotations (0/90/180/270°) and their features averaged, "
            "so a scan exported turned by 90° gets the same answer")


def build_card(meta: dict, *, min_auc: float = 0.85, min_accuracy: float = 0.80) -> dict:
    """The card: ``{"title", "warnings": [str], "sections": [{"id", "title", "rows", "table", "paragraphs"}]}``."""
    meta = _dict(meta)
    arch = ARCH_NAMES.get(meta.get("architecture"), _text(meta.get("architecture")))
    bb = backbone_info(meta)
    warnings = []
    if bb["imagenet"] is not True:
        warnings.append(f"The backbone is not ImageNet-trained: {bb['name']}." if bb["imagenet"] is False
                        else "Whether the backbone is ImageNet-trained is not recorded.")
    prep = _dict(meta.get("preprocessing"))
    imagenet_text = {True: "yes", False: "no"}.get(bb["imagenet"], NOT_RECORDED)
    sections = [
        {"id": "model", "title": "Model", "rows": [
            ["Architecture", f"{arch} transfer learning, sigmoid output P(tumor)"],
            ["Backbone", bb["name"]], ["Backbone ImageNet-trained", imagenet_text], ["Backbone source", bb["source"]],
            ["Input", f"{_text(meta.get('input_size'))} × {_text(meta.get('input_size'))} px RGB"],
            ["Preprocessing", ", ".join(f"{k}: {v}" for k, v in prep.items() if not isinstance(v, (dict, list)))
             or NOT_RECORDED],
            ["Decision threshold", f"tumor when P(tumor) ≥ {_fmt(meta.get('threshold'))}"],
            ["Test-time averaging", _tta_text(meta)],
            ["Trained", _text(meta.get("created"))],
        ]},
        {"id": "use", "title": "Intended use", "paragraphs": INTENDED_USE},
        {"id": "data", "title": "Training data", "rows": _training_rows(meta)},
    ]
    cv, val = _cv_table(meta), _validation_table(meta)
    perf = {"id": "performance", "title": "Performance (grouped cross-validation)", "table": cv}
    if cv is None:
        perf["paragraphs"] = [f"Grouped cross-validation: {NOT_RECORDED}."]
    sections.append(perf)
    if val is not None:
        sections.append({"id": "validation", "title": "Validation at training time", "table": val})
    cal = _dict(meta.get("calibration"))
    sections.append({"id": "calibration", "title": "Calibration", "rows": [
        ["Method", _text(cal.get("method"))], ["Brier score", _fmt(cal.get("brier"))],
        ["Expected calibration error", _fmt(cal.get("ece"))]],
        "paragraphs": ["Calibration says how far P(tumor) can be read as a probability: of scans given 0.8, "
                       "about 80 % should have a tumor."]})
    rob = _robustness(meta)
    sections.append({"id": "robustness", "title": "Robustness", "table": rob,
                     "paragraphs": [] if rob else [f"Robustness to image changes: {NOT_RECORDED}."]})
    ood_meta, ood_metrics = _dict(meta.get("ood")), _dict(_metrics(meta).get("ood"))
    ood_par = ["Images that do not look like the brain MRI slices the model was trained on are marked "
               "“Not assessed” instead of getting a label: their features are far from the training images', "
               "or they are in colour (MRI slices are greyscale)."]
    if not ood_meta:
        ood_par = [f"Out-of-distribution gate: {NOT_RECORDED}. This version gives a label to every image, "
                   "even one that is not a brain MRI slice."]
    sections.append({"id": "ood", "title": "Out-of-distribution gate", "paragraphs": ood_par, "rows": [
        ["Method", _text(ood_meta.get("method"))],
        ["Threshold", _fmt(ood_meta.get("threshold", ood_metrics.get("threshold")))],
        ["Held-out brain MRI slices assessed", _pct(ood_metrics.get("heldout_assessed"))],
        ["Other images refused (not assessed)", _pct(ood_metrics.get("ood_not_assessed"))]]})
    td = _dict(meta.get("training_data"))
    n = td.get("n_images") or _dict(_dict(meta.get("extra")).get("dataset")).get("files")
    limits = [f"Trained on {n if n else 'an unrecorded number of'} images from one public source; expect lower "
              "accuracy on other scanners and sequences.",
              "Sees one 2-D slice at a time, without the patient's other slices, sequences or history.",
              "Tumor / no tumor only: it does not tell tumor types apart, nor other findings."]
    if bb["imagenet"] is not True:
        limits.append("The backbone was not trained on ImageNet, so its features may transfer less well than "
                      "those of a standard ImageNet backbone.")
    sections.append({"id": "limits", "title": "Known limits", "bullets": limits})
    shortfalls = gate_shortfalls(meta, min_auc, min_accuracy)
    return {"title": f"{arch} model card", "warnings": warnings, "sections": sections, "shortfalls": shortfalls,
            "floors": {"auc": min_auc, "accuracy": min_accuracy}, "headline": headline_metrics(meta)}
