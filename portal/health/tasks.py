"""The scheduler's heartbeat: beat sends this task every SWEEP_INTERVAL_SECONDS on the
default queue (the sweeper's queue), and a worker stamps the time. A stale stamp means the
sweeper is not running either: beat died, or nothing consumes the default queue. The
message expires after one interval, so a backlog cannot refresh the stamp late."""

from celery import shared_task
from django.utils import timezone

from portal.health.models import Heartbeat


@shared_task(ignore_result=True)
def scheduler_heartbeat() -> None:
    Heartbeat.stamp(Heartbeat.SCHEDULER, timezone.now())
