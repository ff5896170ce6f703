"""Storage reads and writes that overlap: one small thread pool per process, and lean reads.

* ``pool()``: ``STORAGE_IO_THREADS`` threads that do the storage I/O that can run side by
  side: an upload's writes (``portal.cases.uploads``) and a worker's reads of the scans it
  predicts next (``classifier.prediction_run``). The pool lives as long as the process, so
  each of its threads keeps its own S3 connection (django-storages holds one per thread)
  instead of opening a new one for every request or chunk. Its threads never touch the
  database; they only move bytes through the storage backend.
* ``read_bytes(file)``: a stored file's bytes. With S3 that is one GET; the storage's own
  ``open()`` asks the server three times (S3File's existence check, s3transfer's size check,
  then the GET), which a worker reading every scan of a batch pays in full.
"""

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """This process's storage I/O pool (made on first use, again in a forked child)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(settings.STORAGE_IO_THREADS, thread_name_prefix="storage-io")
            _pool_pid = os.getpid()
        return _pool


def _is_s3(storage: Storage) -> bool:
    s3 = sys.modules.get("storages.backends.s3")  # not imported: no S3 storage in this process
    return s3 is not None and isinstance(storage, s3.S3Storage)


def read_bytes(file: FieldFile) -> bytes:
    """The bytes of the stored file ``file`` (a FieldFile). A missing file raises
    FileNotFoundError whatever the storage; other storage errors propagate."""
    if not file.name:
        raise FileNotFoundError("no file is stored under this field")
    if _is_s3(file.storage):
        return _s3_get(file.storage, file.name)
    with file.open("rb") as handle:
        return handle.read()


def _s3_get(storage: Any, name: str) -> bytes:
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    # The object key exactly as S3Storage makes it (its location prefix, path checks).
    key = storage._normalize_name(clean_name(name))
    try:
        return storage.bucket.Object(key).get()["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            raise FileNotFoundError(f"File does not exist: {name}") from exc
        raise
