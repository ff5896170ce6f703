"""A hard memory limit per worker child, so that a runaway image kills a child, not the host.

Celery's ``worker_max_memory_per_child`` (WORKER_RECYCLE_MEMORY_MB) only acts *after* a task
ends. This watchdog thread, started in every pool child, checks the child's resident memory
several times a second and kills the child (SIGKILL, as the kernel's OOM killer would) the
moment it passes WORKER_MAX_MEMORY_MB. The pool starts a new child, the message comes back
(``acks_late`` + ``reject_on_worker_lost``) and the job blames only the scans that were in
flight (classifier/prediction_run.py).
"""

import logging
import os
import signal
import threading
import time
from typing import Any

from celery.signals import worker_process_init

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.2


def watch(limit_bytes: int, interval: float = CHECK_SECONDS) -> None:
    import psutil

    process = psutil.Process()
    while True:
        rss = process.memory_info().rss
        if rss > limit_bytes:
            log.error(
                "worker child %s uses %d MB, over WORKER_MAX_MEMORY_MB=%d; killing it",
                os.getpid(), rss // 2**20, limit_bytes // 2**20,
            )
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(interval)


@worker_process_init.connect
def start_watchdog(**_: Any) -> None:
    from django.conf import settings

    limit_mb = settings.WORKER_MAX_MEMORY_MB
    if limit_mb:
        thread = threading.Thread(
            target=watch, args=(limit_mb * 2**20,), name="memory-watchdog", daemon=True
        )
        thread.start()
