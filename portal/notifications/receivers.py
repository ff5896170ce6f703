from typing import Any


def queue_batch_notification(sender: Any, batch_id: Any, **kwargs: Any) -> None:
    """The classifier says a batch is finished: notify in the background (idempotent task),
    when anyone is to be told (the uploader opted in, or the clinic has a webhook)."""
    from portal.cases.models import Batch
    from portal.notifications.models import ClinicWebhook, NotificationPreference
    from portal.notifications.tasks import notify_batch_finished

    batch = Batch.objects.filter(pk=batch_id).values("uploaded_by_id", "case__clinic_id").first()
    if batch is None:
        return
    wants_mail = NotificationPreference.objects.filter(
        user_id=batch["uploaded_by_id"], email_on_batch_finished=True
    ).exists()
    hooked = ClinicWebhook.objects.filter(clinic_id=batch["case__clinic_id"], is_active=True).exists()
    if wants_mail or hooked:
        notify_batch_finished.delay(str(batch_id))
