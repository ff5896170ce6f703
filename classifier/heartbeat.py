"""While a worker runs a job, a small thread writes ``heartbeat_at`` every few seconds.

A job whose worker was killed (the whole worker, not just a child) stops beating; the
sweeper re-queues it after ``JOB_HEARTBEAT_TIMEOUT_SECONDS`` instead of waiting for a long
stall timeout. A worker that is alive but slow keeps beating, so a long chunk is never
mistaken for a dead worker.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

log = logging.getLogger(__name__)


@contextmanager
def heartbeat(model: Any, pk: Any, task_id: str | None) -> Iterator[None]:
    """Beat for the row ``model(pk)`` while it is held by ``task_id``."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    model.objects.filter(pk=pk, worker_task_id=task_id or "").update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:  # a database blip must not end the job; the next beat retries
                    log.warning("heartbeat of %s %s failed", model.__name__, pk, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
