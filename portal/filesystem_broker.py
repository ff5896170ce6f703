"""The embedded broker (`CELERY_BROKER_URL=filesystem://`, what `manage.py start` uses with no
Redis): kombu's filesystem transport with whole-message writes.

kombu 5.7's filesystem channel creates a message file under its final name and then writes
it, while a consumer in another process moves away and reads any file with that name: a
consumer that comes between the two reads an empty file and dies on a JSON error, and the
message is lost (the producer goes on writing into the moved, then deleted, file). Here the
message is written under a name consumers skip and renamed into place once whole: a rename
within one folder is atomic, so a consumer sees a whole message or none."""

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# Consumers pick files whose name ends in ".<queue>.msg"; this suffix keeps a message being
# written out of their sight.
PARTIAL_SUFFIX = ".partial"


class Channel(filesystem.Channel):
    # kombu's stubs give the base and the filesystem channel different _put signatures: this is the latter.
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        partial = path + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, path)
        except OSError as exc:
            try:
                os.remove(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
