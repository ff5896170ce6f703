"""GET /metrics: Prometheus metrics to scale by, behind a bearer token (METRICS_TOKEN).

Everything is read at scrape time from the shared parts (PostgreSQL, Redis, a Celery ping),
never from counters kept in one process, so any web process answers for the whole
deployment, however many web and worker hosts there are. Without METRICS_TOKEN the
endpoint does not exist (404); a missing or wrong token gets 401.
"""

import hmac
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Manager, Min, Q, QuerySet, Sum
from django.db.models.expressions import Combinable
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger(__name__)

PING_TIMEOUT_SECONDS = 1.0
RATE_WINDOW_SECONDS = 300
# Seconds; a job of a few hundred scans takes tens of seconds to minutes on one CPU worker.
JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
PER_CHUNK_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
PER_SCAN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def queue_names() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route)
    return sorted(names)


def queue_depths() -> dict[str, int]:
    """Messages waiting in each Celery queue (on Redis: every priority list of the queue,
    under CELERY_BROKER_KEY_PREFIX)."""
    from portal.celery import app

    depths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        channel: Any = conn.default_channel  # the transport's own channel: it declares queues
        for name in queue_names():
            size = getattr(channel, "_size", None)
            if size is not None:
                depths[name] = int(size(name))
                continue
            try:
                depths[name] = channel.queue_declare(name, passive=True).message_count
            except Exception:  # noqa: BLE001 -- a queue never declared holds nothing
                depths[name] = 0
    return depths


def workers_alive() -> int:
    from portal.celery import app

    return len({name for reply in app.control.ping(timeout=PING_TIMEOUT_SECONDS) or [] for name in reply})


def _histogram(name: str, documentation: str, queryset: QuerySet[Any], expression: Combinable,
               buckets: tuple[float, ...]) -> HistogramMetricFamily:
    annotated = queryset.annotate(seconds=ExpressionWrapper(expression, output_field=DurationField()))
    counts = annotated.aggregate(
        total=Count("pk"),
        sum=Sum("seconds"),
        **{f"le_{i}": Count("pk", filter=Q(seconds__lte=timedelta(seconds=b))) for i, b in enumerate(buckets)},
    )
    family = HistogramMetricFamily(name, documentation)
    total_sum = counts["sum"].total_seconds() if counts["sum"] else 0.0
    family.add_metric(
        [],
        [(str(float(b)), counts[f"le_{i}"]) for i, b in enumerate(buckets)] + [("+Inf", counts["total"])],
        total_sum,
    )
    return family


def _by_state(
    name: str, documentation: str, queryset: QuerySet[Any] | Manager[Any], states: Iterable[str]
) -> GaugeMetricFamily:
    """A gauge of ``queryset``'s rows per ``status``, 0 for each state that has none."""
    family = GaugeMetricFamily(name, documentation, labels=["state"])
    counts = dict(queryset.values_list("status").annotate(n=Count("pk")))
    for state in states:
        family.add_metric([state], counts.get(state, 0))
    return family


def _oldest_age(
    name: str, documentation: str, queryset: QuerySet[Any], field: str, now: datetime
) -> GaugeMetricFamily:
    """Seconds since the earliest ``field`` of ``queryset`` (0 when it is empty)."""
    oldest = queryset.aggregate(at=Min(field))["at"]
    return GaugeMetricFamily(name, documentation, value=(now - oldest).total_seconds() if oldest else 0.0)


class NeuroAICollector:
    """One scrape: database, broker and worker figures; a part that is down is reported in
    ``neuroai_scrape_error`` and the others are still collected."""

    def collect(self) -> Iterator[Any]:
        errors: dict[str, int] = {}
        for part, produce in (("redis", self._queues), ("database", self._database), ("workers", self._workers)):
            try:
                yield from produce()
                errors[part] = 0
            except Exception:  # noqa: BLE001 -- one part down must not hide the others
                log.exception("metrics: could not read %s", part)
                errors[part] = 1
        family = GaugeMetricFamily("neuroai_scrape_error", "1 when this part could not be read in this scrape.",
                                   labels=["part"])
        for part, value in errors.items():
            family.add_metric([part], value)
        yield family

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "neuroai_queue_messages", "Task messages waiting in each Celery queue.", labels=["queue"]
        )
        for name, depth in queue_depths().items():
            family.add_metric([name], depth)
        yield family

    def _workers(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "neuroai_workers_alive", "Celery workers that answered a ping in this scrape.", value=workers_alive()
        )

    def _database(self) -> Iterator[Any]:
        from classifier.models import Prediction, PredictionChunk, PredictionJob, TrainingRun
        from classifier.models.jobs import ChunkStatus, JobStatus

        now = timezone.now()
        yield _by_state("neuroai_jobs", "Prediction jobs by state.", PredictionJob.objects, JobStatus.values)
        yield _by_state("neuroai_training_runs", "Training runs by state.", TrainingRun.objects, JobStatus.values)
        yield _oldest_age(
            "neuroai_queue_oldest_job_age_seconds",
            "How long the oldest queued prediction job has waited for a worker (0: none waiting).",
            PredictionJob.objects.filter(status=JobStatus.QUEUED), "progress_at", now,
        )
        yield _by_state(
            "neuroai_chunks", "Prediction chunks (the unit a worker takes) by state.",
            PredictionChunk.objects, ChunkStatus.values,
        )
        yield _oldest_age(
            "neuroai_queue_oldest_chunk_age_seconds",
            "How long the oldest queued chunk has waited since its task was sent (0: none waiting).",
            PredictionChunk.objects.filter(status=ChunkStatus.QUEUED), "sent_at", now,
        )
        yield _histogram(
            "neuroai_chunk_seconds", "Prediction chunks done: task sent to chunk stored (wait + run).",
            PredictionChunk.objects.filter(status=ChunkStatus.DONE, finished_at__isnull=False),
            F("finished_at") - F("sent_at"), PER_CHUNK_BUCKETS,
        )

        finished = PredictionJob.objects.filter(
            status__in=[JobStatus.SUCCEEDED, JobStatus.PARTIAL], started_at__isnull=False, finished_at__isnull=False
        )
        yield _histogram(
            "neuroai_job_run_seconds", "Prediction jobs that finished: start to finish.",
            finished, F("finished_at") - F("started_at"), JOB_BUCKETS,
        )
        yield _histogram(
            "neuroai_job_turnaround_seconds", "Prediction jobs that finished: upload (job created) to finish.",
            finished, F("finished_at") - F("created_at"), JOB_BUCKETS,
        )
        yield _histogram(
            "neuroai_job_seconds_per_scan", "Prediction jobs that finished: run time divided by scans done "
            "(the per-image latency a chunk of INFERENCE_BATCH_SIZE scans multiplies).",
            finished.filter(done__gt=0), (F("finished_at") - F("started_at")) / F("done"), PER_SCAN_BUCKETS,
        )

        counts = Prediction.objects.aggregate(
            stored=Count("pk", filter=Q(error="")),
            failed=Count("pk", filter=~Q(error="")),
            not_assessed=Count("pk", filter=Q(error="", assessed=False)),
            recent=Count("pk", filter=Q(error="", created_at__gte=now - timedelta(seconds=RATE_WINDOW_SECONDS))),
        )
        yield CounterMetricFamily("neuroai_predictions_stored", "Predictions stored (successful results).",
                                  value=counts["stored"])
        yield CounterMetricFamily(
            "neuroai_prediction_failures", "Failed prediction attempts kept on record (scan could not be analysed).",
            value=counts["failed"],
        )
        yield CounterMetricFamily(
            "neuroai_predictions_not_assessed",
            "Results whose image did not look like the brain MRI slices the model was trained on "
            "(out of distribution: no label given).",
            value=counts["not_assessed"],
        )
        yield GaugeMetricFamily(
            "neuroai_images_per_second",
            f"Predictions stored per second over the last {RATE_WINDOW_SECONDS} s, all workers together.",
            value=counts["recent"] / RATE_WINDOW_SECONDS,
        )
        totals = PredictionJob.objects.aggregate(retries=Sum("retries"), interruptions=Sum("interruptions"))
        yield CounterMetricFamily(
            "neuroai_job_retries", "Times a prediction job raised and was retried.", value=totals["retries"] or 0
        )
        yield CounterMetricFamily(
            "neuroai_job_interruptions", "Worker deaths during prediction jobs with no scan to blame.",
            value=totals["interruptions"] or 0,
        )


def _unauthorized() -> HttpResponse:
    response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _unauthorized()
    started = time.monotonic()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NeuroAICollector())
    body = generate_latest(registry)
    log.debug("metrics scrape took %.3f s", time.monotonic() - started)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
