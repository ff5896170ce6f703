"""A real file-system storage whose disk "fills up" half-way through each write."""

import errno

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage


class DiskFullStorage(FileSystemStorage):
    def _save(self, name, content):
        data = content.read()
        written = super()._save(name, ContentFile(data[: len(data) // 2]))
        self.partial = getattr(self, "partial", []) + [written]
        raise OSError(errno.ENOSPC, "No space left on device", written)
