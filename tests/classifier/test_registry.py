"""Importing ml/ artifacts (command and admin page), activation, plots."""

import json
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.fixtures.models import tiny_artifact_dir
from tests.portal.reviews_data import case_with_scans, csrf_token


@pytest.fixture
def artifact(settings, tmp_path):
    """A fresh copy of the session's tiny VGG16 artifact, outside MODEL_ROOT."""
    source = Path(settings.MODEL_ROOT) / tiny_artifact_dir("vgg16")
    copy = tmp_path / "exported"
    shutil.copytree(source, copy)
    return copy


def test_import_model_command_copies_validates_and_registers_inactive(artifact, settings, db):
    from classifier.models import ModelVersion
    from portal.audit.models import AuditEvent

    call_command("import_model", str(artifact), "--name", "2026-11")
    version = ModelVersion.objects.get()
    assert (version.architecture, version.version, version.is_active) == ("vgg16", "2026-11", False)
    stored = Path(settings.MODEL_ROOT) / version.artifact_path
    assert stored == Path(settings.MODEL_ROOT) / "vgg16" / "2026-11"
    assert (stored / "model.keras").read_bytes() == (artifact / "model.keras").read_bytes()
    metadata = json.loads((artifact / "metadata.json").read_text())
    assert version.artifact_sha256 == metadata["model_sha256"]
    assert version.threshold == metadata["threshold"] and version.metadata["input_size"] == 32
    assert AuditEvent.objects.get(action="model_import").object_id == str(version.pk)


def test_version_defaults_to_a_timestamp_and_duplicates_are_refused(artifact, db):
    from classifier.models import ModelVersion

    call_command("import_model", str(artifact), "--name", "one")
    with pytest.raises(CommandError, match="already registered"):
        call_command("import_model", str(artifact), "--name", "one")
    call_command("import_model", str(artifact / "metadata.json"))
    names = sorted(ModelVersion.objects.values_list("version", flat=True))
    assert names[1] == "one" and names[0][:2] == "20"


@pytest.mark.parametrize("damage, reason", [
    ("no-metadata", "no metadata.json"),
    ("bad-json", "not valid JSON"),
    ("changed-model", "does not match metadata.json"),
    ("bad-threshold", "bad threshold"),
    ("missing", "not found"),
])
def test_invalid_artifacts_are_refused_with_the_reason(artifact, settings, db, damage, reason):
    from classifier.models import ModelVersion

    path = artifact
    if damage == "no-metadata":
        (artifact / "metadata.json").unlink()
    elif damage == "bad-json":
        (artifact / "metadata.json").write_text("{not json")
    elif damage == "changed-model":
        with open(artifact / "model.keras", "ab") as handle:
            handle.write(b"tampered")
    elif damage == "bad-threshold":
        meta = json.loads((artifact / "metadata.json").read_text())
        meta["threshold"] = 7
        (artifact / "metadata.json").write_text(json.dumps(meta))
    else:
        path = artifact / "nowhere"
    with pytest.raises(CommandError, match=reason):
        call_command("import_model", str(path), "--name", "bad")
    assert not ModelVersion.objects.exists()
    assert not (Path(settings.MODEL_ROOT) / "vgg16" / "bad").exists()


def test_activation_switches_new_jobs_only(artifact, db, clinic_a, alice):
    from classifier.jobs import create_prediction_jobs
    from classifier.models import ModelVersion
    from portal.audit.models import AuditEvent

    call_command("import_model", str(artifact), "--name", "old", "--activate")
    old = ModelVersion.objects.get(version="old")
    _, batch, _ = case_with_scans(clinic_a, alice, 1)
    (old_job,) = create_prediction_jobs(batch, ["vgg16"])
    call_command("import_model", str(artifact), "--name", "new", "--activate")
    new = ModelVersion.objects.get(version="new")
    old.refresh_from_db()
    assert new.is_active and not old.is_active
    old_job.refresh_from_db()
    assert old_job.model_version == old  # existing job keeps its version
    _, batch2, _ = case_with_scans(clinic_a, alice, 1)
    (new_job,) = create_prediction_jobs(batch2, ["vgg16"])
    assert new_job.model_version == new
    assert AuditEvent.objects.filter(action="model_activate").count() == 2


def test_admin_import_page_activate_action_and_plots(artifact, client_for, root, db):
    from classifier.models import ModelVersion
    from portal.audit.models import AuditEvent

    shutil.copy(artifact / "model.keras", artifact / "not-a-plot.png")  # placeholder bytes
    (artifact / "validation_roc.png").write_bytes(b"\x89PNG\r\n\x1a\nroc")
    c = client_for(root)
    url = reverse("admin:classifier_modelversion_import")
    page = c.get(url)
    bad = c.post(url, {"csrfmiddlewaretoken": csrf_token(page), "path": str(artifact / "nowhere")})
    assert bad.status_code == 200 and "artifact directory not found" in bad.content.decode()
    ok = c.post(url, {"csrfmiddlewaretoken": csrf_token(page), "path": str(artifact), "version": "web-1"})
    assert ok.status_code == 302
    version = ModelVersion.objects.get(version="web-1")
    assert not version.is_active
    detail = c.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).content.decode()
    roc = reverse("admin:classifier_modelversion_plot", args=[version.pk, "roc"])
    assert roc in detail and "No plots" not in detail
    plot = c.get(roc)
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png"
    assert b"".join(plot.streaming_content).startswith(b"\x89PNG")
    assert c.get(reverse("admin:classifier_modelversion_plot", args=[version.pk, "confusion"])).status_code == 404
    assert c.get(reverse("admin:classifier_modelversion_plot", args=[version.pk, "not-a-plot"])).status_code == 404

    changelist = reverse("admin:classifier_modelversion_changelist")
    token = csrf_token(c.get(changelist))
    response = c.post(changelist, {"csrfmiddlewaretoken": token, "action": "activate_selected",
                                   "_selected_action": [version.pk]})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.is_active
    event = AuditEvent.objects.get(action="model_activate")
    assert (event.actor, event.object_id) == (root, str(version.pk))


def test_registry_admin_is_for_superusers_only(artifact, client_for, carol, db):
    from django.contrib.auth.models import Permission

    from classifier.models import ModelVersion

    url = reverse("admin:classifier_modelversion_import")
    assert client_for(carol).get(url).status_code == 302  # not staff: the admin's login page
    carol.is_staff = True
    carol.save()
    carol.user_permissions.add(*Permission.objects.filter(codename__endswith="modelversion"))
    c = client_for(carol)
    page = c.get(reverse("admin:classifier_modelversion_changelist"))
    assert c.get(url).status_code == 403
    assert c.post(url, {"csrfmiddlewaretoken": page.cookies.get("csrftoken", c.cookies["csrftoken"]).value,
                        "path": str(artifact)}).status_code == 403
    assert not ModelVersion.objects.exists()
