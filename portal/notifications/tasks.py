"""Batch-finished notifications: one e-mail to the uploader (if they opted in) and one
signed webhook delivery per clinic webhook, once per batch; deliveries retried with backoff."""

import functools
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

if TYPE_CHECKING:
    from portal.cases.models import Batch

log = logging.getLogger(__name__)
EVENT = "batch.finished"
WEBHOOK_SCHEMES = ("https", "http")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answers where it was set up: a redirect is a failed delivery (HTTP 3xx), never
    a request to wherever the endpoint points (another host, the cloud metadata address)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def batch_payload(batch: "Batch") -> dict[str, Any]:
    jobs = batch.prediction_jobs.select_related("model_version").order_by("model_version__architecture")
    return {
        "event": EVENT,
        "batch": str(batch.pk),
        "case": str(batch.case_id),
        "clinic": str(batch.case.clinic_id),
        "files_received": batch.files_received,
        "accepted": batch.accepted_count,
        "rejected": batch.rejected_count,
        "duplicates": batch.duplicate_count,
        "jobs": [
            {"model": job.model_version.display_name, "status": job.status, "done": job.done,
             "failed": job.failed, "total": job.total}
            for job in jobs
        ],
        "api": f"/api/v1/batches/{batch.pk}/predictions/",
        "sent_at": timezone.now().isoformat(),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@shared_task(acks_late=True)
def notify_batch_finished(batch_id: str) -> None:
    """Safe to run twice: the BatchNotification row makes the second run do nothing."""
    from portal.cases.models import Batch
    from portal.notifications.models import BatchNotification, ClinicWebhook, WebhookDelivery

    batch = Batch.objects.select_related("case__clinic", "uploaded_by").filter(pk=batch_id).first()
    if batch is None:  # gone (never in production: batches are protected)
        return
    try:
        with transaction.atomic():
            note = BatchNotification.objects.create(batch=batch)
            payload = batch_payload(batch)
            deliveries = [
                WebhookDelivery.objects.create(webhook=hook, event=EVENT, payload=payload)
                for hook in ClinicWebhook.objects.filter(clinic=batch.case.clinic, is_active=True)
            ]
            for delivery in deliveries:
                transaction.on_commit(functools.partial(deliver_webhook.delay, str(delivery.pk)))
    except IntegrityError:
        return  # already notified
    user = batch.uploaded_by
    preference = getattr(user, "notification_preference", None)
    if preference and preference.email_on_batch_finished and user.email:
        send_mail(
            subject="NeuroAI: your upload has been analysed",
            message=email_body(batch, payload),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[user.email],
        )
        BatchNotification.objects.filter(pk=note.pk).update(emailed_to=user.email)


def email_body(batch: "Batch", payload: dict[str, Any]) -> str:
    """No patient data: counts and a link that needs a login."""
    lines = [
        f"The upload of {batch.created_at:%Y-%m-%d %H:%M} UTC has been analysed.",
        f"Files received: {payload['files_received']}; accepted {payload['accepted']}, "
        f"rejected {payload['rejected']}, duplicates {payload['duplicates']}.",
    ]
    for job in payload["jobs"]:
        lines.append(f"{job['model']}: {job['status']} "
                     f"({job['done']} of {job['total']} analysed, {job['failed']} failed)")
    link = settings.PORTAL_BASE_URL.rstrip("/") + reverse("cases:batch", kwargs={"batch_id": batch.pk})
    lines += ["", f"Results (login required): {link}", "",
              "Decision support only: every result must be confirmed by a qualified clinician.",
              "You get this e-mail because you asked for it; turn it off under Notifications."]
    return "\n".join(lines)


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self: Any, delivery_id: str) -> None:
    """POST the delivery's JSON, signed; retried WEBHOOK_MAX_ATTEMPTS times with exponential
    backoff (WEBHOOK_RETRY_SECONDS x 2^n). Every attempt is logged on the delivery."""
    from portal.notifications.models import WebhookDelivery

    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.status in (WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED):
        return
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        delivery.webhook.url, data=body, method="POST",
        headers={
            "Content-Type": "application/json", "User-Agent": "NeuroAI-Webhook/1",
            "X-NeuroAI-Event": delivery.event, "X-NeuroAI-Delivery": str(delivery.pk),
            "X-NeuroAI-Timestamp": timestamp,
            "X-NeuroAI-Signature": sign(delivery.webhook.secret, timestamp, body),
        },
    )
    code, error = None, ""
    try:
        if request.type not in WEBHOOK_SCHEMES:  # the model refuses others; a row from before may not
            raise ValueError(f"not an http(s) URL: {request.type}")
        with _OPENER.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = str(getattr(exc, "reason", exc))[:300] or type(exc).__name__
    attempts = delivery.attempts + 1
    ok = code is not None and 200 <= code < 300
    if ok:
        status = WebhookDelivery.Status.DELIVERED
    elif attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        status = WebhookDelivery.Status.FAILED
    else:
        status = WebhookDelivery.Status.RETRYING
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts, last_status_code=code, last_error=error[:300], status=status,
        last_attempt_at=now, delivered_at=now if ok else None,
    )
    if status == WebhookDelivery.Status.RETRYING:
        log.warning("webhook delivery %s failed (%s); retry %s", delivery.pk, error, attempts)
        raise self.retry(countdown=settings.WEBHOOK_RETRY_SECONDS * 2 ** (attempts - 1))
