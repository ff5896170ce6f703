from django.contrib import admin

from portal.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "key_hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "key_hint"]
    readonly_fields = ["key_hash", "key_hint", "created_at", "last_used_at"]
