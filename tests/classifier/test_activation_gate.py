"""Activation gate: a version below MODEL_MIN_AUC / MODEL_MIN_ACCURACY (missing metrics count
as below) is activated only by a superuser who types a reason; the reason is audited and the
model card carries a warning. Registry function, import_model --activate, and the admin."""

import json
import shutil
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.fixtures.models import tiny_artifact_dir
from tests.portal.reviews_data import csrf_token

pytestmark = pytest.mark.django_db


def unique(name):  # artifacts stay in MODEL_ROOT for the session while the database rolls back
    return f"{name}-{uuid.uuid4().hex[:8]}"


LOW = {"validation": {"accuracy": 0.71, "roc_auc": 0.78, "source": "inner CV"}}


@pytest.fixture
def low_artifact(settings, tmp_path):
    """The tiny VGG16 artifact, its metadata saying AUC 0.78 / accuracy 0.71."""
    copy = tmp_path / "low"
    shutil.copytree(Path(settings.MODEL_ROOT) / tiny_artifact_dir("vgg16"), copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["metrics"] = LOW
    (copy / "metadata.json").write_text(json.dumps(meta))
    return copy


@pytest.fixture
def low_version(low_artifact):
    from classifier.registry import import_artifact

    return import_artifact(low_artifact, version=unique("low"))


def activation_events():
    from portal.audit.models import AuditEvent

    return list(AuditEvent.objects.filter(action="model_activate"))


def test_the_gate_refuses_without_a_reason_and_audits_a_superusers_override(low_version, root):
    from classifier.registry import ActivationRefused, activate_version

    with pytest.raises(ActivationRefused, match=r"ROC AUC 0\.780 \(validation\) is below the floor 0\.85"):
        activate_version(low_version, user=root)
    with pytest.raises(ActivationRefused, match="needs a written reason"):
        activate_version(low_version, user=root, override_reason="   ")
    low_version.refresh_from_db()
    assert not low_version.is_active and activation_events() == []

    activate_version(low_version, user=root, override_reason="Only model for the pilot; all results reviewed.")
    low_version.refresh_from_db()
    assert low_version.is_active and low_version.override_by == root
    assert low_version.override_reason == "Only model for the pilot; all results reviewed."
    (event,) = activation_events()
    assert event.actor == root
    assert event.extra["override_reason"] == "Only model for the pilot; all results reviewed."
    assert "ROC AUC 0.780 (validation) is below the floor 0.85" in event.extra["below_floors"]


def test_a_non_superuser_cannot_override(low_version, django_user_model):
    from classifier.registry import ActivationRefused, activate_version

    staff = django_user_model.objects.create_user("staffer", password="x", is_staff=True)
    with pytest.raises(ActivationRefused, match="Only a superuser"):
        activate_version(low_version, user=staff, override_reason="I am sure it is fine, trust me.")
    low_version.refresh_from_db()
    assert not low_version.is_active and activation_events() == []


def test_missing_metrics_count_as_below_the_floors(low_artifact, root):
    from classifier.registry import ActivationRefused, activate_version, import_artifact

    meta = json.loads((low_artifact / "metadata.json").read_text())
    meta["metrics"] = {}
    (low_artifact / "metadata.json").write_text(json.dumps(meta))
    version = import_artifact(low_artifact, version=unique("no-metrics"))
    with pytest.raises(ActivationRefused, match="ROC AUC is not recorded"):
        activate_version(version, user=root)


def test_floors_come_from_settings(low_version, root, settings):
    from classifier.registry import activate_version

    settings.MODEL_MIN_AUC, settings.MODEL_MIN_ACCURACY = 0.75, 0.70
    activate_version(low_version, user=root)
    low_version.refresh_from_db()
    assert low_version.is_active and low_version.override_reason == ""


def test_import_model_activate_needs_override_reason_below_the_floors(low_artifact):
    from classifier.models import ModelVersion

    name = unique("low-cli")
    with pytest.raises(CommandError, match="needs a written reason"):
        call_command("import_model", str(low_artifact), "--name", name, "--activate")
    assert not ModelVersion.objects.exists()  # refused before anything was copied or registered
    call_command("import_model", str(low_artifact), "--name", name, "--activate",
                 "--override-reason", "Validation on our own scans pending; pilot only.")
    version = ModelVersion.objects.get()
    assert version.is_active and version.override_reason.startswith("Validation on our own scans")
    (event,) = activation_events()
    assert event.extra["override_reason"] == "Validation on our own scans pending; pilot only."


def test_admin_action_asks_a_superuser_for_a_reason_and_the_card_shows_it(low_version, client_for, root, alice):
    c = client_for(root)
    changelist = reverse("admin:classifier_modelversion_changelist")
    token = csrf_token(c.get(changelist))
    asked = c.post(changelist, {"csrfmiddlewaretoken": token, "action": "activate_selected",
                                "_selected_action": [low_version.pk]})
    assert asked.status_code == 200
    assert "below the activation floors" in asked.content.decode()
    low_version.refresh_from_db()
    assert not low_version.is_active

    too_short = c.post(changelist, {"csrfmiddlewaretoken": token, "action": "activate_selected",
                                    "_selected_action": [low_version.pk], "confirm_override": "1",
                                    "override_reason": "ok"})
    assert too_short.status_code == 200
    low_version.refresh_from_db()
    assert not low_version.is_active

    done = c.post(changelist, {"csrfmiddlewaretoken": token, "action": "activate_selected",
                               "_selected_action": [low_version.pk], "confirm_override": "1",
                               "override_reason": "Only model available during the pilot."})
    assert done.status_code == 302
    low_version.refresh_from_db()
    assert low_version.is_active and low_version.override_by == root
    assert activation_events()[0].extra["override_reason"] == "Only model available during the pilot."

    card = client_for(alice).get(reverse("model_card", args=[low_version.pk])).content.decode()
    assert 'id="below-floors"' in card and "Only model available during the pilot." in card


def test_a_version_that_clears_the_floors_activates_without_a_reason_or_banner(settings, tmp_path, root, alice,
                                                                               client_for):
    from classifier.registry import activate_version, import_artifact

    copy = tmp_path / "good"
    shutil.copytree(Path(settings.MODEL_ROOT) / tiny_artifact_dir("vgg16"), copy)
    version = import_artifact(copy, version=unique("good"))
    activate_version(version, user=root)
    version.refresh_from_db()
    assert version.is_active and version.override_reason == ""
    card = client_for(alice).get(reverse("model_card", args=[version.pk])).content.decode()
    assert 'id="below-floors"' not in card
