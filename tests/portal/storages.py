"""Real storages (local disk, the SeaweedFS server) with one fault each: a disk that fills up
half-way through a write, writes that must overlap, one write the S3 server refuses."""

import errno
import threading

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage


class DiskFullStorage(FileSystemStorage):
    def _save(self, name, content):
        data = content.read()
        written = super()._save(name, ContentFile(data[: len(data) // 2]))
        self.partial = getattr(self, "partial", []) + [written]
        raise OSError(errno.ENOSPC, "No space left on device", written)


class OneWriteFailsStorage(FileSystemStorage):
    """A real file-system storage whose disk "fills up" half-way through the write of the one
    file whose name contains ``fail_marker`` (a SHA-256); every other write succeeds."""

    def __init__(self, fail_marker="", **kwargs):
        super().__init__(**kwargs)
        self.fail_marker = fail_marker

    def _save(self, name, content):
        if not (self.fail_marker and self.fail_marker in name):
            return super()._save(name, content)
        data = content.read()
        written = super()._save(name, ContentFile(data[: len(data) // 2]))
        self.partial = getattr(self, "partial", []) + [written]
        raise OSError(errno.ENOSPC, "No space left on device", written)


class ConcurrentWritesStorage(FileSystemStorage):
    """A real file-system storage whose writes each wait (up to 20 s) until two writes have
    been in progress at once: written one after the other, the first write fails."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lock, self.active, self.overlapped = threading.Lock(), 0, threading.Event()

    def _save(self, name, content):
        with self.lock:
            self.active += 1
            if self.active >= 2:
                self.overlapped.set()
        try:
            if not self.overlapped.wait(timeout=20):
                raise OSError(errno.EIO, "the writes did not overlap")
            return super()._save(name, content)
        finally:
            with self.lock:
                self.active -= 1


class OneWriteRefusedS3Storage(S3Storage):
    """An S3Storage for the real SeaweedFS server that sends the write of the one file whose
    name contains ``fail_marker`` with a wrong secret, so that the server itself refuses it
    (403); every other request is made with the right credentials."""

    def __init__(self, fail_marker="", **options):
        super().__init__(**options)
        self.fail_marker, self.options = fail_marker, options

    def _save(self, name, content):
        if self.fail_marker and self.fail_marker in name:
            return S3Storage(**{**self.options, "secret_key": "not-the-secret"})._save(name, content)
        return super()._save(name, content)
