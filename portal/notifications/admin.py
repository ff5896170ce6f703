from django.contrib import admin
from django.http import HttpRequest

from portal.notifications.models import ClinicWebhook, NotificationPreference, WebhookDelivery


@admin.register(ClinicWebhook)
class ClinicWebhookAdmin(admin.ModelAdmin):
    list_display = ["clinic", "url", "is_active", "created_at"]
    list_filter = ["is_active"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: every event, its attempts and the endpoint's last answer."""

    list_display = ["created_at", "webhook", "event", "status", "attempts", "last_status_code", "last_error",
                    "delivered_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "email_on_batch_finished"]
