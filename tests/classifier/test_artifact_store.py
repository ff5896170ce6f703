"""Model artifacts fetched from the bucket into a host's cache: by SHA-256, once, never a
partial or altered file."""

import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored_artifact(s3_storage, settings, tmp_path):
    from classifier import artifact_store
    from tests.fixtures.models import tiny_artifact_dir

    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    source = Path(settings.MODEL_ROOT) / tiny_artifact_dir("vgg16")
    artifact_path = f"vgg16/store-{tmp_path.name}"
    files = artifact_store.upload(source, artifact_path)
    return artifact_path, files


def test_concurrent_fetches_download_each_file_once_and_verify_it(stored_artifact, monkeypatch, settings):
    from classifier import artifact_store

    artifact_path, files = stored_artifact
    real = artifact_store.model_storage
    opened = []

    class Counting:
        def __init__(self, storage):
            self.storage = storage

        def open(self, name, mode="rb"):
            opened.append(name)
            return self.storage.open(name, mode)

    monkeypatch.setattr(artifact_store, "model_storage", lambda: Counting(real()))
    results, errors = [], []

    def fetch():
        try:
            results.append(artifact_store.fetch_artifact(artifact_path, files))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    folder = results[0]
    assert sorted(opened) == sorted(f"{artifact_path}/{name}" for name in files)  # once each
    for name, sha in files.items():
        assert artifact_store.file_sha256(folder / name) == sha
    leftovers = [p for p in Path(settings.MODEL_CACHE_DIR).rglob("*") if p.name.startswith(".")]
    assert not leftovers  # no temporary file or staging folder remains


def test_an_altered_artifact_in_the_bucket_is_refused_and_never_cached(stored_artifact, s3_storage, settings):
    from classifier import artifact_store

    artifact_path, files = stored_artifact
    s3_storage.client().put_object(
        Bucket=s3_storage.bucket, Key=f"models/{artifact_path}/model.keras", Body=b"not the model"
    )
    with pytest.raises(artifact_store.ArtifactFetchError, match="sha256"):
        artifact_store.fetch_artifact(artifact_path, files)
    cache = Path(settings.MODEL_CACHE_DIR)
    assert not (cache / "sha256" / files["model.keras"]).exists()
    assert not list((cache / "artifacts").iterdir())
    assert not [p for p in cache.rglob("*.part")]


def test_a_missing_artifact_file_is_a_clear_error(stored_artifact, s3_storage):
    from classifier import artifact_store

    artifact_path, files = stored_artifact
    s3_storage.client().delete_object(Bucket=s3_storage.bucket, Key=f"models/{artifact_path}/metadata.json")
    with pytest.raises(artifact_store.ArtifactFetchError, match="missing"):
        artifact_store.fetch_artifact(artifact_path, files)
