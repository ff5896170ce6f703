"""Importing ml/ artifacts as model versions, and activating them.

Model versions are global: one registry serves every clinic, so only superusers import,
activate or train them (the admin pages and the management command).
"""

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404, HttpRequest
from django.utils import timezone

from classifier import artifact_store
from classifier.models import ModelVersion

# Plot files an ml/ artifact may hold, by kind (ml.train writes the validation_* ones).
PLOTS = {
    "roc": ("roc.png", "validation_roc.png"),
    "confusion": ("confusion.png", "validation_confusion.png"),
}
_VERSION_RE = re.compile(r"[^A-Za-z0-9._-]+")


class RegistryError(Exception):
    """The artifact cannot be imported; str() is the reason, fit to show to an admin."""


class ActivationRefused(RegistryError):
    """The version is below the activation floors and no permitted override was given."""


def _read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    from ml.artifacts import ArtifactError, read_metadata

    try:
        return read_metadata(path)
    except ArtifactError as exc:
        raise RegistryError(f"Invalid artifact: {exc}") from exc


def _version_name(metadata: dict[str, Any], version: str | None) -> str:
    name = version or metadata.get("version") or (metadata.get("extra") or {}).get("version")
    if not name:
        name = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = _VERSION_RE.sub("-", str(name)).strip("-.")[:40]
    if not name:
        raise RegistryError("The version name is empty once unsafe characters are removed.")
    return name


def import_artifact(path: str | os.PathLike[str], user: User | None = None, activate: bool = False,
                    version: str | None = None, request: HttpRequest | None = None,
                    override_reason: str = "") -> ModelVersion:
    """Validate the artifact at ``path``, publish it as <arch>/<version>/ in the model storage
    (MODEL_ROOT, or the bucket with S3_BUCKET set; see classifier/artifact_store.py), register
    a ModelVersion (inactive unless ``activate``) and audit the import. Raises
    RegistryError with the reason when the artifact is invalid or the version exists, and
    ActivationRefused (nothing imported) when ``activate`` is asked for a version below the
    floors without a permitted ``override_reason``."""
    source = Path(path)
    metadata = _read_metadata(source)
    source = Path(metadata.pop("path"))
    architecture = metadata["architecture"]
    name = _version_name(metadata, version)
    if ModelVersion.objects.filter(architecture=architecture, version=name).exists():
        raise RegistryError(f"{architecture} version {name!r} is already registered.")
    if activate:
        _check_gate(f"{architecture} version {name!r}", ModelVersion(metadata=metadata).gate_shortfalls(),
                    user, override_reason)
    relative = Path(architecture) / name
    remote = artifact_store.is_remote()
    target = Path(settings.MODEL_ROOT) / relative
    if not remote and target.exists():
        raise RegistryError(f"{target} already exists; choose another version name.")
    # Copy to a staging folder, check the copy, then publish it: a half-copied artifact is
    # never registered. Published means renamed under MODEL_ROOT, or uploaded to the model
    # storage (S3) where every worker host fetches it by SHA-256.
    staging_parent = Path(settings.MODEL_ROOT if not remote else settings.MODEL_CACHE_DIR)
    staging_parent = staging_parent / architecture if not remote else staging_parent
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=staging_parent))
    published = False
    try:
        copied = staging / "artifact"
        shutil.copytree(source, copied, symlinks=False)
        checked = _read_metadata(copied)
        checked.pop("path", None)
        model_sha256 = artifact_store.file_sha256(copied / checked["model_file"])
        if remote:
            try:
                files = artifact_store.upload(copied, relative.as_posix())
            except FileExistsError as exc:
                raise RegistryError(f"{exc}; choose another version name.") from exc
        else:
            files = artifact_store.manifest(copied)
            copied.rename(target)
        published = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    def unpublish() -> None:
        if remote:
            artifact_store.remove_artifact(relative.as_posix(), files)
        else:
            shutil.rmtree(target, ignore_errors=True)

    try:
        with transaction.atomic():
            model_version = ModelVersion.objects.create(
                architecture=architecture,
                version=name,
                artifact_path=relative.as_posix(),
                artifact_sha256=model_sha256,
                artifact_files=files,
                metadata=checked,
                metrics=checked.get("metrics") or {},
                threshold=float(checked["threshold"]),
                imported_by=user if user is not None and user.is_authenticated else None,
            )
            _audit(request, user, "model_import", model_version, source=str(source))
            if activate:
                activate_version(model_version, user=user, request=request, override_reason=override_reason)
    except IntegrityError as exc:
        unpublish()
        raise RegistryError(f"{architecture} version {name!r} is already registered.") from exc
    except BaseException:
        if published:
            unpublish()
        raise
    return model_version


def _check_gate(what: str, shortfalls: list[str], user: User | None, override_reason: str) -> str:
    """Refuse unless the version clears the floors, or a superuser gives a reason.

    ``user`` None is the operator of a management command (shell access to the server)."""
    if not shortfalls:
        return ""
    reason = (override_reason or "").strip()
    floors = f"{what} is below the activation floors: {'; '.join(shortfalls)}."
    if user is not None and not (user.is_active and user.is_superuser):
        raise ActivationRefused(f"{floors} Only a superuser can activate it, with a reason.")
    if not reason:
        raise ActivationRefused(f"{floors} Activating it anyway needs a written reason (kept in the audit trail).")
    return reason


def activate_version(model_version: ModelVersion, user: User | None = None, request: HttpRequest | None = None,
                     override_reason: str = "") -> ModelVersion:
    """Make ``model_version`` the active one of its architecture. Jobs already created keep
    the version they were created with; only new jobs pick this one.

    A version below MODEL_MIN_AUC / MODEL_MIN_ACCURACY (missing metrics count as below) is
    activated only with ``override_reason`` from a superuser; the reason is audited and kept
    on the version, whose model card then carries a warning. Raises ActivationRefused."""
    shortfalls = model_version.gate_shortfalls()
    reason = _check_gate(str(model_version), shortfalls, user, override_reason)
    previous = ModelVersion.active(model_version.architecture)
    with transaction.atomic():
        model_version.activate()
        if reason:
            model_version.override_reason = reason
            model_version.override_by = user if user is not None and user.is_authenticated else None
            model_version.override_at = timezone.now()
            model_version.save(update_fields=["override_reason", "override_by", "override_at"])
        _audit(
            request,
            user,
            "model_activate",
            model_version,
            previous=str(previous) if previous and previous.pk != model_version.pk else None,
            **({"override_reason": reason, "below_floors": shortfalls} if reason else {}),
        )
    return model_version


def _audit(request: HttpRequest | None, user: User | None, action: str, model_version: ModelVersion,
           **extra: Any) -> None:
    from classifier.signals import announce

    announce(
        action,
        request=request,
        obj=model_version,
        actor=user,
        architecture=model_version.architecture,
        version=model_version.version,
        **extra,
    )


def artifact_dir(model_version: ModelVersion) -> Path:
    from classifier.engine import artifact_dir as resolve

    return resolve(model_version)


def plot_path(model_version: ModelVersion, kind: str) -> Path | None:
    """Local path of the ROC or confusion-matrix PNG in the artifact, or None when absent.
    With object storage only the plot is fetched (into the cache), never the model."""
    if kind not in PLOTS:
        return None
    names = list(PLOTS[kind])
    plots = model_version.metadata.get("plots") if isinstance(model_version.metadata, dict) else None
    if isinstance(plots, dict) and isinstance(plots.get(kind), str):
        names.insert(0, plots[kind])
    for name in names:
        try:
            found = artifact_store.local_file(model_version, name)
        except artifact_store.ArtifactFetchError:
            found = None
        if found is not None:
            return found
    return None


def plot_response(model_version: ModelVersion, kind: str) -> FileResponse:
    """The plot's PNG, privately cached for a few minutes; 404 when the artifact has none."""
    found = plot_path(model_version, kind)
    if found is None:
        raise Http404("No such plot.")
    response = FileResponse(open(found, "rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response
