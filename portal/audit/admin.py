from django.contrib import admin

from classifier.read_only_admin import ReadOnlyAdminMixin
from portal.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: audit events are never added, changed or deleted through the admin."""

    list_display = ["at", "actor_name", "action", "clinic", "object_type", "object_id", "ip_address"]
    list_filter = ["action", "clinic"]
    search_fields = ["actor_name", "object_id", "ip_address"]
    date_hierarchy = "at"
    list_select_related = ["clinic"]
