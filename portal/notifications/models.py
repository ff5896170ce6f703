"""Who wants an e-mail when their upload is analysed; each clinic's webhook and its log."""

import secrets
import uuid

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone


class NotificationPreference(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="notification_preference")
    email_on_batch_finished = models.BooleanField(
        "e-mail me when my upload has been analysed", default=False
    )

    def __str__(self) -> str:
        return f"Notifications of {self.user}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class ClinicWebhook(models.Model):
    """POSTs a signed JSON ``batch.finished`` event to the clinic's own system."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.CASCADE, related_name="webhook")
    url = models.URLField(max_length=500, help_text="https:// endpoint of the clinic's system.",
                          validators=[URLValidator(schemes=["https", "http"])])
    secret = models.CharField(
        max_length=100, default=new_secret,
        help_text="Shared secret for the X-NeuroAI-Signature header (HMAC-SHA256 of timestamp.body).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Webhook of {self.clinic}"


class BatchNotification(models.Model):
    """One row per finished batch: the notifications of a batch are sent once."""

    batch = models.OneToOneField("cases.Batch", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    emailed_to = models.CharField(max_length=254, blank=True)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(ClinicWebhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
