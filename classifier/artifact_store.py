"""Model artifacts in object storage, and the local cache workers load them from.

The registry stores each artifact file under ``<arch>/<version>/<name>`` in the ``models``
storage (STORAGES["models"]: the bucket's ``models/`` prefix when S3_BUCKET is set, else
MODEL_ROOT) and records ``{name: sha256}`` in ``ModelVersion.artifact_files``.

With object storage, no host shares a disk with another: a worker fetches each file by its
SHA-256 into MODEL_CACHE_DIR, once per host, safely under concurrency:

* one file lock per blob (``filelock``), so that two worker processes of one host download it
  once while other blobs proceed;
* the download goes to a temporary file in the cache folder, its SHA-256 is checked against
  the registry's, and only then is it renamed into place (atomic): a partial or corrupt
  download is never seen under the blob's name;
* the artifact folder is assembled from the blobs in a staging folder and renamed into place.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages

from ml.weights import file_sha256  # the one SHA-256 helper (classifier.registry uses it too)

if TYPE_CHECKING:
    from classifier.models import ModelVersion

LOCK_TIMEOUT_SECONDS = 600  # a model download on a slow link; then the task fails and retries


class ArtifactFetchError(Exception):
    """A stored artifact file is missing or does not match its recorded SHA-256."""


def model_storage() -> Storage:
    return storages["models"]


def is_remote() -> bool:
    """True when artifacts live in object storage (no path on this host's disk)."""
    try:
        model_storage().path("x")
    except NotImplementedError:
        return True
    return False




def manifest(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative name: sha256}`` of every file under ``folder``."""
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _key(artifact_path: str, name: str) -> str:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ArtifactFetchError(f"unsafe artifact file name {name!r}")
    return f"{PurePosixPath(artifact_path).as_posix()}/{relative.as_posix()}"


def upload(folder: str | os.PathLike[str], artifact_path: str) -> dict[str, str]:
    """Store every file of ``folder`` under ``artifact_path`` in object storage; returns the
    manifest. Refuses to overwrite: a version's files never change once stored."""
    storage = model_storage()
    files = manifest(folder)
    stored: list[str] = []
    try:
        for name in files:
            key = _key(artifact_path, name)
            if storage.exists(key):
                raise FileExistsError(f"{key} is already in the model storage")
            with open(Path(folder) / name, "rb") as handle:
                saved = storage.save(key, File(handle, name=PurePosixPath(name).name))
            stored.append(saved)
            if saved != key:  # a concurrent upload took the name
                raise FileExistsError(f"{key} is already in the model storage")
    except BaseException:
        remove(stored)
        raise
    return files


def remove(keys: Iterable[str]) -> None:
    storage = model_storage()
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 -- best effort cleanup after a failed import
            pass


def remove_artifact(artifact_path: str, files: Iterable[str]) -> None:
    remove([_key(artifact_path, name) for name in files])


def _cache_dir(*parts: str) -> Path:
    path = Path(settings.MODEL_CACHE_DIR, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock(name: str) -> Any:
    from filelock import FileLock

    return FileLock(str(_cache_dir("locks") / f"{name}.lock"), timeout=LOCK_TIMEOUT_SECONDS)


def fetch_blob(key: str, sha256: str) -> Path:
    """Local path of the stored file ``key``, whose content must hash to ``sha256``."""
    blob = _cache_dir("sha256") / sha256
    if blob.exists():
        return blob
    with _lock(sha256):
        if blob.exists():  # another process fetched it while we waited
            return blob
        fd, temporary = tempfile.mkstemp(dir=blob.parent, prefix=f".{sha256[:16]}-", suffix=".part")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, model_storage().open(key, "rb") as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise ArtifactFetchError(
                    f"{key} in the model storage has sha256 {digest.hexdigest()[:12]}…, the registry "
                    f"recorded {sha256[:12]}…: the stored file changed or is corrupt"
                )
            os.chmod(temporary, 0o444)
            os.replace(temporary, blob)
        except FileNotFoundError as exc:
            raise ArtifactFetchError(f"{key} is missing from the model storage") from exc
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return blob


def fetch_artifact(artifact_path: str, files: Mapping[str, str]) -> Path:
    """Local folder holding the artifact's files (each verified by SHA-256)."""
    digest = hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()[:24]
    target = _cache_dir("artifacts") / digest
    if target.is_dir():
        return target
    with _lock(f"artifact-{digest}"):
        if target.is_dir():
            return target
        blobs = {name: fetch_blob(_key(artifact_path, name), sha) for name, sha in files.items()}
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{digest}-"))
        try:
            for name, blob in blobs.items():
                destination = staging / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(blob, destination)
                except OSError:
                    shutil.copyfile(blob, destination)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def local_dir(model_version: "ModelVersion") -> Path:
    """The folder on this host to load ``model_version`` from."""
    path = Path(model_version.artifact_path)
    if path.is_absolute():
        return path
    if model_version.artifact_files and is_remote():
        return fetch_artifact(model_version.artifact_path, model_version.artifact_files)
    return Path(settings.MODEL_ROOT) / path


def local_file(model_version: "ModelVersion", name: str) -> Path | None:
    """One file of the artifact on this host (a plot for the admin), or None when absent.
    With object storage only that file is fetched, never the whole model."""
    if model_version.artifact_files and is_remote():
        sha = model_version.artifact_files.get(name)
        return fetch_blob(_key(model_version.artifact_path, name), sha) if sha else None
    base = local_dir(model_version).resolve()
    candidate = (base / name).resolve()
    return candidate if candidate.is_relative_to(base) and candidate.is_file() else None
