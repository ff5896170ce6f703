"""Names and links for the objects audit events point at, so that the audit page shows
"Case P-0001" with a link rather than a bare id. Only objects the viewer may open are
linked (looked up through each model's ``for_user``); the rest show their type and short id."""

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.urls import reverse

from classifier.models import PredictionJob
from portal.audit.models import AuditEvent
from portal.cases.models import Batch, Case, Scan


def _short(object_id: str) -> str:
    return object_id[:8] + "…" if len(object_id) > 12 else object_id


def _lookup(queryset: QuerySet[Any], ids: Iterable[str], label: Callable[[Any], str],
            url: Callable[[Any], str]) -> dict[str, tuple[str, str]]:
    found = {}
    valid = []
    for value in ids:
        try:
            valid.append(queryset.model._meta.pk.to_python(value))
        except Exception:  # a malformed id in an old event: shown as it is
            continue
    for obj in queryset.filter(pk__in=valid):
        found[str(obj.pk)] = (label(obj), url(obj))
    return found


def describe(events: list[AuditEvent], user: User) -> list[AuditEvent]:
    """Set ``object_label`` and ``object_url`` on each event of ``events`` (a page of them)."""
    by_type: dict[str, set[str]] = {}
    for event in events:
        if event.object_type:
            by_type.setdefault(event.object_type, set()).add(event.object_id)
    known: dict[str, dict[str, tuple[str, str]]] = {}
    if "case" in by_type:
        known["case"] = _lookup(
            Case.objects.for_user(user), by_type["case"], lambda c: f"Case {c.patient_ref}",
            lambda c: reverse("cases:detail", kwargs={"case_id": c.pk}),
        )
    if "batch" in by_type:
        known["batch"] = _lookup(
            Batch.objects.for_user(user).select_related("case"), by_type["batch"],
            lambda b: f"Upload to {b.case.patient_ref}, {b.created_at:%Y-%m-%d %H:%M}",
            lambda b: reverse("cases:batch", kwargs={"batch_id": b.pk}),
        )
    if "scan" in by_type:
        known["scan"] = _lookup(
            Scan.objects.for_user(user).select_related("case"), by_type["scan"],
            lambda s: f"Scan {s.original_name} ({s.case.patient_ref})",
            lambda s: reverse("cases:scan", kwargs={"scan_id": s.pk}),
        )
    if "predictionjob" in by_type:
        known["predictionjob"] = _lookup(
            PredictionJob.objects.for_user(user).select_related("batch__case", "model_version"),
            by_type["predictionjob"],
            lambda j: f"{j.model_version.display_name} analysis of an upload to {j.batch.case.patient_ref}",
            lambda j: reverse("cases:batch", kwargs={"batch_id": j.batch_id}),
        )
    for event in events:
        label, url = known.get(event.object_type, {}).get(
            event.object_id, (f"{event.object_type} {_short(event.object_id)}", "")
        )
        event.object_label, event.object_url = label, url
    return events
