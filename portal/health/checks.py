"""The readiness checks behind /healthz. Each returns (ok, details); details are for staff
and the logs only (hosts, worker names and exception text never reach anonymous callers)."""

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from portal.celery import app as celery_app

BROKER_TIMEOUT_SECONDS = 3
INSPECT_TIMEOUT_SECONDS = 2.0


Result = tuple[bool, dict[str, Any]]  # (up, details for staff and the logs)


def check_database() -> Result:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, {}


def check_broker() -> Result:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    return True, {}


def required_queues() -> list[str]:
    """Every queue a task is sent to: the default one and those named by the routes."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE})


def check_workers() -> Result:
    """Some worker answers, and every queue has a consumer (a queue nobody reads piles up).

    The number of workers is unknown, so asking them waits the whole INSPECT_TIMEOUT_SECONDS
    and every worker answers: the answer is kept HEALTH_WORKERS_CACHE_SECONDS in this process,
    and requests that come meanwhile (a load balancer's probes, anyone polling this anonymous
    URL) neither hold a web thread for seconds nor make the workers answer each of them."""
    global _workers_answer
    with _workers_lock:  # one question at a time; those waiting take its answer
        kept_for = settings.HEALTH_WORKERS_CACHE_SECONDS
        if _workers_answer is not None and time.monotonic() - _workers_answer[0] < kept_for:
            return _workers_answer[1]
        result = _ask_workers()
        _workers_answer = (time.monotonic(), result)
        return result


_workers_lock = threading.Lock()
_workers_answer: tuple[float, Result] | None = None


def _ask_workers() -> Result:
    replies = celery_app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).active_queues() or {}
    if not replies:
        return False, {"error": "no worker answered"}
    consumed = {queue["name"] for queues in replies.values() for queue in queues or []}
    missing = [name for name in required_queues() if name not in consumed]
    details = {"workers": sorted(replies), "queues_without_a_worker": missing}
    return not missing, details


def check_scheduler() -> Result:
    """The beat-sent heartbeat is younger than twice the sweep interval."""
    from portal.health.models import Heartbeat

    beat = Heartbeat.objects.filter(name=Heartbeat.SCHEDULER).first()
    limit = 2 * settings.SWEEP_INTERVAL_SECONDS
    if beat is None:
        return False, {"error": "no heartbeat recorded yet", "stale_after_seconds": limit}
    age = (timezone.now() - beat.beat_at).total_seconds()
    details = {"last_beat": beat.beat_at.isoformat(), "age_seconds": round(age, 1), "stale_after_seconds": limit}
    return age <= limit, details


CHECKS: dict[str, Callable[[], Result]] = {
    "database": check_database,
    "broker": check_broker,
    "workers": check_workers,
    "scheduler": check_scheduler,
}
# A check that cannot run while another is down reports down without trying.
NEEDS = {"workers": "broker", "scheduler": "database"}
