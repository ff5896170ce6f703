"""The embedded broker (`manage.py start` with no Redis) hands every message whole to a
consumer that reads while the producer writes. kombu's own filesystem transport let a
consumer read a message file before its bytes were written: the worker died on a JSON
error and the message was lost (seen as `start`'s worker exiting at its first task)."""

import threading
import time
from queue import Empty

from kombu import Connection

MESSAGES = 120
BODY = "x" * 1_000_000  # a large message keeps the file open for a while as it is written


def test_a_consumer_reading_while_the_producer_writes_gets_every_message_whole(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
               "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"]),
               "store_processed": False}
    received, errors = [], []

    def consume():
        with Connection("filesystem://", transport="portal.filesystem_broker:Transport",
                        transport_options=options) as connection:
            queue = connection.SimpleQueue("jobs")
            deadline = time.monotonic() + 60
            while len(received) < MESSAGES and time.monotonic() < deadline:
                try:  # polls without a pause, as a worker that finds its queue busy does
                    message = queue.get_nowait()
                except Empty:
                    continue
                except Exception as exc:  # what the stock transport raised mid-write
                    errors.append(repr(exc))
                    continue
                received.append(message.payload)
                message.ack()

    consumer = threading.Thread(target=consume)
    consumer.start()
    with Connection("filesystem://", transport="portal.filesystem_broker:Transport",
                    transport_options=options) as connection:
        queue = connection.SimpleQueue("jobs")
        for number in range(MESSAGES):
            queue.put({"number": number, "body": BODY})
    consumer.join(timeout=60)
    assert errors == []
    assert sorted(message["number"] for message in received) == list(range(MESSAGES))
    assert all(message["body"] == BODY for message in received)
    assert list(folders["queue"].iterdir()) == []
