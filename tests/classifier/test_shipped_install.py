"""install_shipped_models: the shipped VGG16 (head in git + HED backbone rebuilt from the
pinned wheel) is registered and activated once; ResNet50 is absent with the reason shown in
the registry; a version an admin activated later is never displaced."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from ml.shipping import SHIPPED_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_model_root(settings, tmp_path):
    """A model store of this test's own (the database rolls back after each test; files would not)."""
    settings.MODEL_ROOT = tmp_path / "models"


SHIPPED_NAME = json.loads((SHIPPED_DIR / "vgg16" / "ship.json").read_text())["name"]


def test_install_registers_and_activates_the_shipped_vgg16_once(capsys):
    from classifier.models import ModelVersion

    call_command("install_shipped_models")
    version = ModelVersion.objects.get(architecture="vgg16")
    assert version.version == SHIPPED_NAME and version.is_active
    assert version.metadata["backbone"]["imagenet"] is False
    assert version.gate_shortfalls() == []
    out = capsys.readouterr().out
    assert f"vgg16: {SHIPPED_NAME} registered and active" in out
    assert "resnet50: absent: No ResNet50 head ships with the code" in out

    call_command("install_shipped_models")  # idempotent
    assert ModelVersion.objects.filter(architecture="vgg16").count() == 1
    assert f"vgg16: {SHIPPED_NAME} already registered" in capsys.readouterr().out


def test_install_never_displaces_an_active_version():
    from classifier.models import ModelVersion
    from tests.portal.reviews_data import model_version

    mine = model_version("vgg16", "clinic-own")  # active; its files do not matter here
    call_command("install_shipped_models")
    mine.refresh_from_db()
    assert mine.is_active
    assert not ModelVersion.objects.get(version=SHIPPED_NAME).is_active


def test_registry_says_why_resnet50_is_absent(client_for, root, settings, tmp_path):
    bogus = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    bogus.write_bytes(b"not the ImageNet weights")
    settings.RESNET50_IMAGENET_WEIGHTS = str(bogus)
    page = client_for(root).get(reverse("admin:classifier_modelversion_changelist")).content.decode()
    assert 'id="shipped-models"' in page
    assert "No ResNet50 head ships with the code" in page
    assert "not installed yet" in page or "active" in page  # the VGG16 row

    from classifier.shipped import _backbone_missing

    why = _backbone_missing({"backbone": {"id": "resnet50-imagenet"}})
    assert "is not the genuine Keras ImageNet file" in why and str(bogus) in why
