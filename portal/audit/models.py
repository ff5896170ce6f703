"""An append-only record of who did what, where and from which address.

Append-only is enforced three times: the model refuses save() of an existing row and
delete(); the queryset refuses bulk update() and delete(); and the database itself rejects
UPDATE and DELETE on the table (a trigger, migration 0004_append_only_trigger), so raw SQL
cannot rewrite history either. TRUNCATE (test teardown, a deliberate purge by the database
owner) is not blocked.
"""

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


def _refuse_change(*args: Any, **kwargs: Any) -> NoReturn:
    raise PermissionError("Audit events are append-only.")


def _refuse_delete(*args: Any, **kwargs: Any) -> NoReturn:
    raise PermissionError("Audit events cannot be deleted.")


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk changes are refused like single ones (also the paths Django's deletion
    collector takes: ``_update`` and ``_raw_delete``)."""

    update = _update = bulk_update = update_or_create = _refuse_change
    delete = _raw_delete = _refuse_delete


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOGIN_LOCKED = "login_locked", "Login locked out"
        LOGOUT = "logout", "Logout"
        CASE_CREATE = "case_create", "Case created"
        CASE_VIEW = "case_view", "Case viewed"
        UPLOAD = "upload", "Upload"
        IMAGE_VIEW = "image_view", "Image viewed"
        REVIEW = "review", "Review"
        EXPORT = "export", "Export"
        MODEL_IMPORT = "model_import", "Model imported"
        MODEL_ACTIVATE = "model_activate", "Model activated"
        TRAINING_START = "training_start", "Training started"
        JOB_REQUEUE = "job_requeue", "Job re-queued"
        JOB_CANCEL = "job_cancel", "Job cancelled"
        JOB_RERUN = "job_rerun", "Failed scans re-run"
        REPORT_EXPORT = "report_export", "Case report exported"
        MFA_ENROLLED = "mfa_enrolled", "Two-factor enrolled"
        MFA_VERIFIED = "mfa_verified", "Two-factor verified"
        MFA_FAILED = "mfa_failed", "Two-factor code refused"
        MFA_RECOVERY_USED = "mfa_recovery_used", "Recovery code used"
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
        PASSWORD_RESET_DONE = "password_reset_done", "Password reset completed"
        ACCESS_REFUSED = "access_refused", "Access refused"
        BATCH_VIEW = "batch_view", "Upload viewed"
        SCAN_VIEW = "scan_view", "Scan page viewed"
        QUEUE_VIEW = "queue_view", "Review queue viewed"
        SEARCH = "search", "Case search"
        ANALYSIS_QUEUE = "analysis_queue", "Analysis queued"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"

    # PROTECT, not SET_NULL: nulling the actor would rewrite history (and the trigger
    # refuses the UPDATE). A user who has acted is deactivated, never deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    clinic = models.ForeignKey(
        "accounts.Clinic", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=30, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    extra = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    # Not stored: set by portal.audit.objects.describe() for the audit page.
    object_label: str
    object_url: str

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise PermissionError("Audit events cannot be deleted.")
