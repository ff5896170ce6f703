"""Heartbeats: a row per periodic process, stamped each time it proves it is alive."""

from datetime import datetime

from django.db import models


class Heartbeat(models.Model):
    SCHEDULER = "scheduler"

    name = models.CharField(max_length=50, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def stamp(cls, name: str, at: datetime) -> None:
        cls.objects.update_or_create(name=name, defaults={"beat_at": at})
