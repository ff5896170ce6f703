"""When a batch finishes: one e-mail to the uploader who opted in, one signed webhook
delivery per clinic webhook (retried with backoff, logged), once per batch."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.classifier.helpers import make_batch, wait_for_jobs, wait_until_idle


class Endpoint:
    """A webhook receiver on loopback that fails ``failures`` times, then answers 200 (or, with
    ``redirect_to``, a 302 to that URL)."""

    def __init__(self, failures, redirect_to=None):
        self.failures, self.received = failures, []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.received.append((self.headers, body))
                code = 500 if len(endpoint.received) <= endpoint.failures else 302 if redirect_to else 200
                self.send_response(code)
                if redirect_to:
                    self.send_header("Location", redirect_to)
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def mails_about(batch, settings):
    folder = Path(settings.EMAIL_FILE_PATH)
    if not folder.is_dir():
        return []
    return [p.read_text() for p in folder.iterdir() if str(batch.pk) in p.read_text()]


@pytest.mark.worker
def test_batch_finished_sends_one_email_and_one_webhook_retried_and_logged(
    transactional_db, celery_worker, clinic_a, alice, registered_models, settings
):
    from portal.notifications.models import BatchNotification, ClinicWebhook, NotificationPreference, WebhookDelivery

    alice.email = "alice@clinic-a.example"
    alice.save()
    NotificationPreference.objects.create(user=alice, email_on_batch_finished=True)
    endpoint = Endpoint(failures=2)
    try:
        hook = ClinicWebhook.objects.create(clinic=clinic_a, url=endpoint.url)
        batch, jobs = make_batch(clinic_a, alice, 3, architectures=("vgg16", "resnet50"))
        assert len(jobs) == 2
        wait_for_jobs(jobs, worker=celery_worker)
        assert wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").exists()), celery_worker.log()
        assert wait_until(lambda: mails_about(batch, settings))
        time.sleep(3)  # room for a second (wrong) notification to show up
        [delivery] = WebhookDelivery.objects.filter(webhook=hook)
        assert (delivery.attempts, delivery.last_status_code, delivery.status) == (3, 200, "delivered")
        assert BatchNotification.objects.filter(batch=batch).count() == 1
        [mail] = mails_about(batch, settings)
        assert "alice@clinic-a.example" in mail and "has been analysed" in mail and "P-JOB" not in mail
        assert len(endpoint.received) == 3
        bodies = {body for _, body in endpoint.received}
        assert len(bodies) == 1  # the same event each time
        headers, body = endpoint.received[-1]
        payload = json.loads(body)
        assert payload["event"] == "batch.finished" and payload["batch"] == str(batch.pk) and payload["accepted"] == 3
        expected = hmac.new(hook.secret.encode(), f"{headers['X-NeuroAI-Timestamp']}.".encode() + body, hashlib.sha256)
        assert headers["X-NeuroAI-Signature"] == "sha256=" + expected.hexdigest()
        wait_until_idle("default")  # nothing of this test still runs when its data is flushed
    finally:
        endpoint.close()


@pytest.mark.django_db
def test_no_email_without_opt_in_and_a_dead_endpoint_is_logged_as_failed(clinic_a, alice, vgg16_model, mailoutbox,
                                                                         settings):
    from portal.notifications.models import ClinicWebhook, WebhookDelivery
    from portal.notifications.tasks import deliver_webhook, notify_batch_finished

    alice.email = "alice@clinic-a.example"
    alice.save()
    hook = ClinicWebhook.objects.create(clinic=clinic_a, url="http://127.0.0.1:9/closed")
    batch, _ = make_batch(clinic_a, alice, 1)
    notify_batch_finished(str(batch.pk))
    notify_batch_finished(str(batch.pk))  # a second announcement of the same batch
    assert mailoutbox == []
    [delivery] = WebhookDelivery.objects.filter(webhook=hook)
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    deliver_webhook.apply(args=[str(delivery.pk)])
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 1 and delivery.last_error


@pytest.mark.django_db
def test_a_webhook_goes_to_its_http_endpoint_and_nowhere_else(clinic_a, alice, vgg16_model, settings):
    """A redirect is a failed delivery, not a request to wherever it points (another host,
    a cloud metadata address); an address that is not http(s) is refused."""
    from django.core.exceptions import ValidationError

    from portal.notifications.models import ClinicWebhook, WebhookDelivery
    from portal.notifications.tasks import deliver_webhook, notify_batch_finished

    target, endpoint = Endpoint(failures=0), None
    try:
        endpoint = Endpoint(failures=0, redirect_to=target.url)
        hook = ClinicWebhook.objects.create(clinic=clinic_a, url=endpoint.url)
        batch, _ = make_batch(clinic_a, alice, 1)
        notify_batch_finished(str(batch.pk))
        [delivery] = WebhookDelivery.objects.filter(webhook=hook)
        settings.WEBHOOK_MAX_ATTEMPTS = 1
        deliver_webhook.apply(args=[str(delivery.pk)])
        delivery.refresh_from_db()
        assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("failed", 302, "HTTP 302")
        assert len(endpoint.received) == 1 and target.received == []
    finally:
        target.close()
        if endpoint:
            endpoint.close()
    with pytest.raises(ValidationError):
        ClinicWebhook(clinic=clinic_a, url="ftp://files.example.org/hook").full_clean()
