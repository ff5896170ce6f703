"""Safe reading of an uploaded .zip of a DICOM series or study.

A zip is recognised by its content (the local-file-header magic), never by its name. The
whole archive is refused, with its reason, when any entry's name could escape a folder
(``..``, an absolute path, a drive letter), when it holds another archive, when an entry
is encrypted, when it holds more entries than one upload may, when an entry or the whole
would unpack past the limits, or when an entry's compression ratio is that of a zip bomb.
Sizes are enforced while reading, so a header that lies about them gains nothing.
"""

import posixpath
import zipfile
from dataclasses import dataclass

ZIP_MAGIC = b"PK\x03\x04"
_NESTED_MAGIC = (ZIP_MAGIC, b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh")
_SKIPPED = ("__MACOSX/",)
_CHUNK = 1024 * 1024


class ArchiveRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_entry_bytes: int
    max_total_bytes: int
    max_ratio: int


def is_zip(data: bytes) -> bool:
    return data[:4] == ZIP_MAGIC


def _unsafe_name(name: str) -> bool:
    if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in posixpath.normpath(name).split("/") or ".." in name.split("/")


def _skipped(info: zipfile.ZipInfo) -> bool:
    base = posixpath.basename(info.filename.rstrip("/"))
    return (
        info.is_dir() or info.filename.startswith(_SKIPPED) or base.startswith(".")
        or base.upper() == "DICOMDIR"
    )


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: "ArchiveLimits", budget: int) -> bytes:
    out = bytearray()
    with archive.open(info) as handle:
        while chunk := handle.read(_CHUNK):
            out += chunk
            if len(out) > limits.max_entry_bytes:
                raise ArchiveRefused(
                    f"“{info.filename}” unpacks to more than {limits.max_entry_bytes // (1024 * 1024)} MB"
                )
            if len(out) > budget:
                raise ArchiveRefused(
                    f"the archive unpacks to more than {limits.max_total_bytes // (1024 * 1024)} MB"
                )
            if len(out) > max(info.compress_size, 1) * limits.max_ratio:
                raise ArchiveRefused(
                    f"“{info.filename}” expands more than {limits.max_ratio} times (a zip bomb)"
                )
    return bytes(out)


def unpack(data: bytes, limits: "ArchiveLimits") -> list[tuple[str, bytes]]:
    """The archive's files as ``(name, bytes)`` in name order, or :class:`ArchiveRefused`."""
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise ArchiveRefused("the zip archive is corrupt") from None
    for info in infos:
        if _unsafe_name(info.filename):
            raise ArchiveRefused(f"the entry “{info.filename[:80]}” points outside the archive")
    files = [info for info in infos if not _skipped(info)]
    if len(files) > limits.max_entries:
        raise ArchiveRefused(f"the archive holds {len(files)} files; the limit is {limits.max_entries}")
    if not files:
        raise ArchiveRefused("the archive holds no files")
    declared = 0
    for info in files:
        if info.flag_bits & 0x1:
            raise ArchiveRefused(f"“{info.filename}” is encrypted")
        if info.filename.lower().endswith((".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2")):
            raise ArchiveRefused(f"“{info.filename}” is an archive inside the archive")
        if info.file_size > max(info.compress_size, 1) * limits.max_ratio:
            raise ArchiveRefused(f"“{info.filename}” expands more than {limits.max_ratio} times (a zip bomb)")
        declared += info.file_size
    if declared > limits.max_total_bytes:
        raise ArchiveRefused(f"the archive unpacks to more than {limits.max_total_bytes // (1024 * 1024)} MB")
    out, total = [], 0
    try:
        for info in sorted(files, key=lambda item: item.filename):
            content = _read(archive, info, limits, limits.max_total_bytes - total)
            total += len(content)
            if content.startswith(_NESTED_MAGIC):
                raise ArchiveRefused(f"“{info.filename}” is an archive inside the archive")
            out.append((info.filename, content))
    except ArchiveRefused:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        raise ArchiveRefused("the zip archive is corrupt") from None
    return out
