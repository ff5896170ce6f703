"""The admin of records that are shown, never edited there (predictions, reviews, audit
events, model versions). Here, the lowest Django layer, so that portal apps use it too."""

from django.db.models import Model
from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """Put before ``admin.ModelAdmin``: no add, change or delete through the admin (the
    change page becomes a view page; the bulk "delete selected" action disappears)."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
