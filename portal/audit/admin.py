from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from portal.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit events are never added, changed or deleted through the admin."""

    list_display = ["at", "actor_name", "action", "clinic", "object_type", "object_id", "ip_address"]
    list_filter = ["action", "clinic"]
    search_fields = ["actor_name", "object_id", "ip_address"]
    date_hierarchy = "at"
    list_select_related = ["clinic"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # not even the bulk "delete selected"
