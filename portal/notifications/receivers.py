def queue_batch_notification(sender, batch_id, **kwargs):
    """The classifier says a batch is finished: notify in the background (idempotent task)."""
    from portal.notifications.tasks import notify_batch_finished

    notify_batch_finished.delay(str(batch_id))
