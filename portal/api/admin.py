from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read-only but for revoking: a token stays bound to the user who made it (moving it to
    another user would hand that user's rights to whoever holds the key), is never made here
    (its key could not be shown), and a revoked or expired one is not brought back."""

    list_display = ["name", "user", "key_hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "key_hint"]
    readonly_fields = ["name", "user", "key_hash", "key_hint", "created_at", "expires_at", "last_used_at",
                       "revoked_at"]
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        from portal.audit.log import record
        from portal.audit.models import AuditEvent

        tokens = list(queryset.filter(revoked_at__isnull=True))
        ApiToken.objects.filter(pk__in=[token.pk for token in tokens]).update(revoked_at=timezone.now())
        for token in tokens:
            record(request, AuditEvent.Action.API_TOKEN_REVOKED, obj=token, name=token.name, hint=token.key_hint,
                   owner=token.user.username, reason="revoked in the admin")
        self.message_user(request, f"{len(tokens)} token(s) revoked.", messages.SUCCESS)
