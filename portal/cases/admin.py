from django.contrib import admin
from django.http import HttpRequest

from portal.cases.models import Batch, Case, Scan


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    """A case never changes clinic (its files, pseudonyms and patient hash belong to that
    clinic; moving it would show one clinic's patient to another), nor its patient hash."""

    list_display = ["patient_ref", "clinic", "created_by", "created_at", "last_activity_at"]
    list_filter = ["clinic"]
    search_fields = ["patient_ref"]
    readonly_fields = ["dicom_patient_hash", "created_at", "last_activity_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Case | None = None) -> list[str]:
        fixed = ["clinic", "created_by"] if obj is not None else []
        return fixed + list(self.readonly_fields)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = [
        "id", "case", "uploaded_by", "created_at",
        "files_received", "accepted_count", "rejected_count", "duplicate_count",
    ]
    list_filter = ["case__clinic"]
    search_fields = ["case__patient_ref"]
    readonly_fields = [f.name for f in Batch._meta.fields]


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = ["original_name", "case", "status", "format", "width", "height", "created_at"]
    list_filter = ["status", "format", "case__clinic"]
    search_fields = ["original_name", "sha256", "case__patient_ref"]
    readonly_fields = [f.name for f in Scan._meta.fields]
