from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from classifier.registry import RegistryError, import_artifact


class Command(BaseCommand):
    help = (
        "Import a model artifact exported by ml/ (a directory with model.keras and "
        "metadata.json) as a new model version; --activate makes it the active version of "
        "its architecture (new jobs only)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", help="artifact directory (or its metadata.json)")
        parser.add_argument("--name", dest="version_name",
                            help="version name (default: from metadata, else a timestamp)")
        parser.add_argument("--activate", action="store_true", help="make it the active version")
        parser.add_argument(
            "--override-reason",
            default="",
            help="with --activate: why a version below MODEL_MIN_AUC / MODEL_MIN_ACCURACY is activated "
            "anyway (kept in the audit trail); without it such a version is not imported",
        )

    def handle(self, *args: Any, path: str, version_name: str | None = None, activate: bool = False,
               override_reason: str = "", **options: Any) -> None:
        if override_reason and not activate:
            raise CommandError("--override-reason only makes sense with --activate.")
        try:
            model_version = import_artifact(
                path, activate=activate, version=version_name, override_reason=override_reason
            )
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        state = "active" if model_version.is_active else "inactive"
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {model_version} ({state}) into {model_version.artifact_path}; "
                f"sha256 {model_version.artifact_sha256[:12]}…"
            )
        )
