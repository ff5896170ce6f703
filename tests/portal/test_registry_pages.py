"""The model registry in the admin: the AUC column reads nested metrics, the metrics show as
the model card's compact tables (not a JSON dump), and training offers the local HED
backbone by default and ImageNet only where its weights file is present."""

import re

import pytest
from django.urls import reverse

from tests.portal.reviews_data import csrf_token

pytestmark = pytest.mark.django_db
TRAINED = {
    "architecture": "vgg16",
    "input_size": 160,
    "threshold": 0.42,
    "metrics": {"validation": {"accuracy": 0.874, "roc_auc": 0.931, "sensitivity": 0.9, "specificity": 0.85,
                               "brier": 0.1, "n": 61, "source": "held-out 20 %",
                               "ci95": {"roc_auc": [0.87, 0.98]},
                               "confusion": {"tn": 20, "fp": 4, "fn": 3, "tp": 34}}},
}


@pytest.fixture
def trained_version(db):
    from classifier.models import ModelVersion

    return ModelVersion.objects.create(
        architecture="vgg16", version="trained-1", artifact_path="vgg16/trained-1",
        artifact_sha256="1" * 64, metadata=TRAINED, metrics=TRAINED["metrics"], threshold=0.42,
    )


def test_registry_auc_column_reads_validation_metrics(trained_version, client_for, root):
    page = client_for(root).get(reverse("admin:classifier_modelversion_changelist")).content.decode()
    row = page[page.index("trained-1"):]
    row = row[: row.index("</tr>")]
    assert "0.931" in row and ">—<" not in row


def test_registry_shows_metrics_as_a_compact_table(trained_version, client_for, root):
    url = reverse("admin:classifier_modelversion_change", args=[trained_version.pk])
    page = client_for(root).get(url).content.decode()
    assert '<table class="metrics-compact"><caption>Validation at training time</caption>' in page
    assert "<td>ROC AUC</td><td>0.931</td><td>0.870 – 0.980</td>" in page
    assert "<p>Grouped cross-validation: not recorded.</p>" in page
    # the raw JSON is there for whoever needs it, folded away
    pre = page.index("&quot;roc_auc&quot;: 0.931")
    assert page.rfind("<details><summary>Full metadata (JSON)</summary>", 0, pre) > page.rfind("</details>", 0, pre)


def _start_page(client):
    return client.get(reverse("admin:classifier_trainingrun_start")).content.decode()


def test_training_offers_the_local_hed_backbone_by_default_and_no_unreachable_imagenet(client_for, root, settings,
                                                                                       tmp_path):
    settings.RESNET50_IMAGENET_WEIGHTS = str(tmp_path / "absent.h5")
    page = _start_page(client_for(root))
    [selected] = re.findall(r'<option value="([^"]+)" selected>', page.split('name="weights"')[1].split("</select>")[0])
    assert selected == "vgg16-hed"
    assert "HED-derived VGG16" in page
    assert 'value="imagenet' not in page


def test_training_offers_imagenet_when_its_file_is_present(client_for, root, monkeypatch, tmp_path):
    import ml.backbones

    present = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    monkeypatch.setattr(  # a genuine 94 MB file cannot be made here; the check itself is ml's
        ml.backbones, "imagenet_file",
        lambda arch, configured=None: (present, "") if arch == "resnet50" else (None, "absent"),
    )
    c = client_for(root)
    page = _start_page(c)
    assert 'value="imagenet:resnet50"' in page and 'value="imagenet:vgg16"' not in page
    url = reverse("admin:classifier_trainingrun_start")
    response = c.post(url, {"csrfmiddlewaretoken": csrf_token(c.get(url)), "architecture": "resnet50",
                            "weights": "vgg16-hed", "epochs": 2, "fine_tune_epochs": 0, "input_size": 32})
    assert "The HED-derived backbone is a VGG16" in response.content.decode()


def test_a_hed_run_trains_on_the_verified_local_backbone_file(monkeypatch, tmp_path, db):
    import ml.backbones
    from classifier.models import TrainingRun
    from classifier.training import train_config

    rebuilt = tmp_path / ml.backbones.VGG16_HED_FILE
    rebuilt.write_bytes(b"weights")
    seen = []
    monkeypatch.setattr(ml.backbones, "ensure_vgg16_hed", lambda cache: seen.append(cache) or rebuilt)
    run = TrainingRun(architecture="vgg16", options={"weights": "vgg16-hed", "epochs": 3, "input_size": 32})
    config = train_config(run)
    assert config.weights == str(rebuilt) and config.head_epochs == 3
    from django.conf import settings

    assert seen == [settings.BACKBONE_CACHE_DIR]
