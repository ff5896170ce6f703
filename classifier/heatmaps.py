"""Heatmap requests: a prediction's Grad-CAM is queued once, whatever the number of page views.

The state lives on the prediction (``heatmap_state``) and moves only by compare-and-set
UPDATEs, so concurrent requests race on one row and exactly one of them sends the task:

    none ──request──> queued ──drawn──> ready
                        │  └──(no word for REQUEST_STALE_AFTER: message lost)──> queued again
                        └──error──> failed ──explicit retry──> queued
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from classifier.models import HeatmapState, Prediction

log = logging.getLogger(__name__)

# A queued drawing takes seconds; one still queued after this was lost (worker killed, broker
# down when it was sent) and may be requested again.
REQUEST_STALE_AFTER = timedelta(minutes=5)


def request_heatmap(prediction: Prediction, storage_name: str, *, retry: bool = False, redraw: bool = False) -> bool:
    """Queue the drawing unless someone already did; True when this call queued it.

    ``retry``: also after a failure (the user asked again). ``redraw``: also when it was
    ready but its file has gone. Updates ``prediction``'s heatmap fields in place."""
    from classifier.tasks import make_heatmap

    now = timezone.now()
    allowed = Q(heatmap_state=HeatmapState.NONE) | Q(
        heatmap_state=HeatmapState.QUEUED, heatmap_requested_at__lt=now - REQUEST_STALE_AFTER
    )
    if retry:
        allowed |= Q(heatmap_state=HeatmapState.FAILED)
    if redraw:
        allowed |= Q(heatmap_state=HeatmapState.READY)
    won = Prediction.objects.filter(Q(pk=prediction.pk) & allowed).update(
        heatmap_state=HeatmapState.QUEUED, heatmap_requested_at=now, heatmap_error=""
    )
    if won:
        public_id = str(prediction.public_id)
        # robust: with the broker down the request stays queued and goes again once stale.
        transaction.on_commit(lambda: make_heatmap.delay(public_id, storage_name), robust=True)
    prediction.refresh_from_db(fields=["heatmap_state", "heatmap_requested_at", "heatmap_error"])
    return bool(won)


def mark_ready(prediction_pk: int) -> None:
    Prediction.objects.filter(pk=prediction_pk).update(
        heatmap_state=HeatmapState.READY, heatmap_error=""
    )


def mark_failed(prediction_pk: int, message: str) -> None:
    Prediction.objects.filter(pk=prediction_pk).update(
        heatmap_state=HeatmapState.FAILED, heatmap_error=message[:300]
    )
