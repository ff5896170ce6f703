"""The shared tiny-model fixture registers loadable, active model versions."""

from pathlib import Path


def test_registered_models_are_active_and_loadable(registered_models, settings):
    from classifier.engine import load_model
    from classifier.models import ModelVersion

    for arch, version in registered_models.items():
        assert ModelVersion.active(arch) == version
        assert not Path(version.artifact_path).is_absolute()
        loaded = load_model(version)
        assert loaded.architecture == arch
        assert loaded.input_size == 32


def test_a_second_version_can_replace_the_active_one(register_tiny_model):
    from classifier.models import ModelVersion

    first = register_tiny_model("vgg16", version="a")
    second = register_tiny_model("vgg16", version="b")
    first.refresh_from_db()
    assert not first.is_active and second.is_active
    assert ModelVersion.active("vgg16") == second
    third = register_tiny_model("vgg16", version="c", activate=False)
    assert not third.is_active
