"""Importing ml/ artifacts as model versions, and activating them.

Model versions are global: one registry serves every clinic, so only superusers import,
activate or train them (the admin pages and the management command).
"""

import hashlib
import re
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from classifier.models import ModelVersion

# Plot files an ml/ artifact may hold, by kind (ml.train writes the validation_* ones).
PLOTS = {
    "roc": ("roc.png", "validation_roc.png"),
    "confusion": ("confusion.png", "validation_confusion.png"),
}
_VERSION_RE = re.compile(r"[^A-Za-z0-9._-]+")


class RegistryError(Exception):
    """The artifact cannot be imported; str() is the reason, fit to show to an admin."""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_metadata(path):
    from ml.artifacts import ArtifactError, read_metadata

    try:
        return read_metadata(path)
    except ArtifactError as exc:
        raise RegistryError(f"Invalid artifact: {exc}") from exc


def _version_name(metadata, version):
    name = version or metadata.get("version") or (metadata.get("extra") or {}).get("version")
    if not name:
        name = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = _VERSION_RE.sub("-", str(name)).strip("-.")[:40]
    if not name:
        raise RegistryError("The version name is empty once unsafe characters are removed.")
    return name


def import_artifact(path, user=None, activate=False, version=None, request=None):
    """Validate the artifact at ``path``, copy it to MODEL_ROOT/<arch>/<version>/, register
    a ModelVersion (inactive unless ``activate``) and audit the import. Raises
    RegistryError with the reason when the artifact is invalid or the version exists."""
    source = Path(path)
    metadata = _read_metadata(source)
    source = Path(metadata.pop("path"))
    architecture = metadata["architecture"]
    name = _version_name(metadata, version)
    if ModelVersion.objects.filter(architecture=architecture, version=name).exists():
        raise RegistryError(f"{architecture} version {name!r} is already registered.")
    relative = Path(architecture) / name
    target = Path(settings.MODEL_ROOT) / relative
    if target.exists():
        raise RegistryError(f"{target} already exists; choose another version name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy next to the target, check the copy, then rename: a half-copied artifact is never
    # registered.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        copied = staging / "artifact"
        shutil.copytree(source, copied, symlinks=False)
        checked = _read_metadata(copied)
        checked.pop("path", None)
        copied.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        with transaction.atomic():
            model_version = ModelVersion.objects.create(
                architecture=architecture,
                version=name,
                artifact_path=str(relative),
                artifact_sha256=_sha256(target / checked["model_file"]),
                metadata=checked,
                metrics=checked.get("metrics") or {},
                threshold=float(checked["threshold"]),
                imported_by=user if user is not None and user.is_authenticated else None,
            )
            _audit(request, user, "model_import", model_version, source=str(source))
            if activate:
                activate_version(model_version, user=user, request=request)
    except IntegrityError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise RegistryError(f"{architecture} version {name!r} is already registered.") from exc
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return model_version


def activate_version(model_version, user=None, request=None):
    """Make ``model_version`` the active one of its architecture. Jobs already created keep
    the version they were created with; only new jobs pick this one."""
    previous = ModelVersion.active(model_version.architecture)
    with transaction.atomic():
        model_version.activate()
        _audit(
            request,
            user,
            "model_activate",
            model_version,
            previous=str(previous) if previous and previous.pk != model_version.pk else None,
        )
    return model_version


def _audit(request, user, action, model_version, **extra):
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


def artifact_dir(model_version):
    from classifier.engine import artifact_dir as resolve

    return resolve(model_version)


def plot_path(model_version, kind):
    """Path of the ROC or confusion-matrix PNG in the artifact, or None when absent."""
    if kind not in PLOTS:
        return None
    names = list(PLOTS[kind])
    plots = model_version.metadata.get("plots") if isinstance(model_version.metadata, dict) else None
    if isinstance(plots, dict) and isinstance(plots.get(kind), str):
        names.insert(0, plots[kind])
    base = artifact_dir(model_version).resolve()
    for name in names:
        candidate = (base / name).resolve()
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate
    return None
