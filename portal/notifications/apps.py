from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from classifier.signals import batch_finished
        from portal.notifications.receivers import queue_batch_notification

        batch_finished.connect(queue_batch_notification, dispatch_uid="notifications.batch_finished")
