"""The one compare-and-set of work ownership, for prediction chunks and training runs.

A task message holds a row (``worker_task_id``) from the moment it moves the row from queued
to running. Inside the caller's transaction, :func:`claim` locks the row and says how this
message stands to it:

- ``"new"``: the row was queued; it is now held by this message (the caller starts it);
- ``"redelivered"``: the row is running and already held by this very message: its worker
  died and the broker delivered the message again (``acks_late``);
- ``None``: the row is missing, finished, or held by another message (a duplicate).
"""

from collections.abc import Sequence
from typing import Any

NEW, REDELIVERED = "new", "redelivered"


def claim(model: Any, pk: Any, task_id: str | None, *,
          select_related: Sequence[str] = ()) -> tuple[Any, str | None]:
    """Lock ``model`` row ``pk`` for ``task_id``; ``(row, how)`` as the module says."""
    task_id = task_id or ""
    row = model.objects.select_for_update().select_related(*select_related).filter(pk=pk).first()
    if row is None:
        return None, None
    if row.status == "queued":
        row.worker_task_id = task_id
        return row, NEW
    if row.status == "running" and task_id and row.worker_task_id == task_id:
        return row, REDELIVERED
    return row, None
