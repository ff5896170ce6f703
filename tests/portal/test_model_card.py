"""The model card page: any logged-in clinic member can read any version's card (results link
to it); it is rendered from the version's metadata, says plainly that the backbone is not
ImageNet, shows the grouped-CV, calibration, robustness and OOD figures the metadata holds, and
serves the artifact's plots."""

import json
import shutil
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from ml.shipping import SHIPPED_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipped_like(settings):
    """A version registered with the shipped VGG16's metadata and plots (no model file needed)."""
    from classifier.models import ModelVersion

    manifest = json.loads((SHIPPED_DIR / "vgg16" / "ship.json").read_text())
    relative = Path("vgg16") / f"card-{uuid.uuid4().hex[:8]}"
    folder = Path(settings.MODEL_ROOT) / relative
    folder.mkdir(parents=True)
    for plot in manifest["plots"]:
        shutil.copyfile(SHIPPED_DIR / "vgg16" / plot, folder / plot)
    meta = {**manifest["metadata"], "backbone": {k: manifest["backbone"][k] for k in ("name", "imagenet", "source")}}
    return ModelVersion.objects.create(architecture="vgg16", version=relative.name, artifact_path=str(relative),
                                       artifact_sha256="0" * 64, metadata=meta, threshold=0.5)


def test_any_clinic_member_reads_the_card(shipped_like, client_for, alice, mallory):
    url = reverse("model_card", args=[shipped_like.pk])
    for user in (alice, mallory):  # clinics A and B: model versions serve every clinic
        page = client_for(user).get(url)
        assert page.status_code == 200
    page = page.content.decode()
    assert "HED-derived VGG16" in page and "The backbone is not ImageNet-trained" in page
    assert "Second opinion on axial brain MRI slices" in page and "Not for diagnosis" in page
    meta = json.loads((SHIPPED_DIR / "vgg16" / "ship.json").read_text())["metadata"]
    n_images, cv = meta["training_data"]["n_images"], meta["metrics"]["cv"]
    assert (f"Trained on {n_images} images from one public source; expect lower accuracy on other scanners and "
            "sequences." in page)
    # The shipped head's own figures (older metadata's "not recorded" is tested in tests/ml/test_card.py).
    assert "Performance (grouped cross-validation)" in page
    assert f"{cv['accuracy']['mean']:.3f}" in page and f"{cv['auc']['mean']:.3f}" in page
    assert "Expected calibration error" in page and "Robustness" in page
    heldout = f"{meta['metrics']['ood']['heldout_assessed']:.1%}".replace("%", " %")
    assert "Out-of-distribution gate" in page and heldout in page
    assert "rotations (0/90/180/270°)" in page
    assert "&#x27;id&#x27;" not in page and "('id'," not in page  # sections render as text, never as reprs


def test_the_card_needs_login_and_a_clinic(shipped_like, django_user_model):
    url = reverse("model_card", args=[shipped_like.pk])
    assert Client().get(url)["Location"].startswith("/accounts/login/")
    loner = django_user_model.objects.create_user("loner", password="x")
    c = Client()
    c.force_login(loner)
    assert c.get(url).status_code == 404
    assert c.get(reverse("model_card_plot", args=[shipped_like.pk, "roc"])).status_code == 404


def test_the_card_shows_the_artifacts_plots(shipped_like, client_for, alice):
    c = client_for(alice)
    page = c.get(reverse("model_card", args=[shipped_like.pk])).content.decode()
    roc = reverse("model_card_plot", args=[shipped_like.pk, "roc"])
    assert roc in page and reverse("model_card_plot", args=[shipped_like.pk, "confusion"]) in page
    plot = c.get(roc)
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png"
    assert b"".join(plot.streaming_content).startswith(b"\x89PNG")
    assert c.get(reverse("model_card_plot", args=[shipped_like.pk, "metadata"])).status_code == 404
