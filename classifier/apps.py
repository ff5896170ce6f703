from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Classifier"

    def ready(self) -> None:
        # Registers the worker children's memory watchdog (a Celery signal handler).
        from classifier import worker_memory  # noqa: F401
