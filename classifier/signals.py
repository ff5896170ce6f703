"""What the classifier tells the rest of the site, without importing it.

``classifier_action`` is sent inside the transaction of each administrative action
(model import and activation, training start, job re-queue and cancel); the portal's
audit trail listens to it. Arguments: ``action`` (one of ACTIONS), ``request`` (or
None), ``actor`` (a user or None), ``obj`` (the model instance acted on),
``clinic_id`` (or None for site-wide actions) and ``extra`` (a JSON-able dict).
"""

from typing import Any

from django.dispatch import Signal
from django.http import HttpRequest

ACTIONS = {"model_import", "model_activate", "training_start", "job_requeue", "job_cancel"}

classifier_action = Signal()


def announce(action: str, *, request: HttpRequest | None = None, actor: Any = None, obj: Any = None,
             clinic_id: Any = None, **extra: Any) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown classifier action {action!r}")
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    if actor is not None and not actor.is_authenticated:
        actor = None
    classifier_action.send(
        sender=type(obj) if obj is not None else None,
        action=action, request=request, actor=actor, obj=obj, clinic_id=clinic_id, extra=extra,
    )


# Sent (after commit) once every prediction job of a batch has finished; ``batch_id`` is the
# batch's pk. The portal's notifications listen to it. It may be sent more than once for one
# batch (two jobs finishing at once both see the batch done): receivers must be idempotent.
batch_finished = Signal()


def announce_batch_finished(batch_id: Any) -> None:
    """Called after a job's final state is committed: tells the receivers when it was the
    batch's last unfinished job."""
    from classifier.models import PredictionJob
    from classifier.models.jobs import FINISHED

    jobs = PredictionJob.objects.filter(batch_id=batch_id)
    if jobs.exists() and not jobs.exclude(status__in=FINISHED).exists():
        batch_finished.send(sender=PredictionJob, batch_id=batch_id)
