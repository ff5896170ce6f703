#!/usr/bin/env python
"""How far the shared parts go: PostgreSQL, Redis and S3, each measured alone.

    .venv/bin/python bench/scale_parts.py [--predictions 2048] [--messages 5000] [--objects 400]
                                          [--threads 1,4] [--worker-rate 13.2]

* PostgreSQL: prediction rows stored per second through the worker's own ORM path
  (``classifier.prediction_run._save``: one transaction per chunk of 16, the duplicate checks
  and the job's counters included), for batches of ``--batch`` scans made by the real upload
  path (not timed).
* Redis: task messages per second, round trip: real Celery task messages (``send_task``) are
  published, then consumed and acknowledged as a worker does (kombu, acks_late), on their own
  queue.
* S3: PUT and GET per second of a 50 KB scan through django-storages (boto3) against a
  SeaweedFS server on loopback (started here with its own data folder and credentials).

With several threads each thread has its own database connection / boto3 session, as several
worker processes would. Then: how many workers of ``--worker-rate`` images/s (the README's
end-to-end figure for one worker process) each part can feed, and which saturates first.
Scratch resources only: database ``neuroai_bench_scale`` (dropped and made), Redis database 14
under a key prefix of its own, a temporary data folder. Prints a table, then one JSON line.
"""

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from _scratch import drop_database, portal_environment, recreate_database  # noqa: E402

DB_NAME = "neuroai_bench_scale"
CHUNK = 16
SCAN_BYTES = 50 * 1024


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=2048, help="prediction rows per thread count")
    parser.add_argument("--batch", type=int, default=256, help="scans per batch (one job each)")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--objects", type=int, default=400, help="S3 PUTs (and GETs) per thread count")
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--worker-rate", type=float, default=13.2, help="images/s of one worker process")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    return parser.parse_args()


def in_threads(count, work):
    """Run ``work(index)`` in ``count`` threads at once; returns the wall time."""
    errors = []
    barrier = threading.Barrier(count + 1)

    def run(index):
        from django.db import connection

        try:
            barrier.wait()
            work(index)
        except Exception as exc:  # noqa: BLE001 -- reported after the run
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def tiny_image(seed):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")  # lossless: distinct seeds, distinct files
    return buffer.getvalue()


def postgres_inserts(total, threads, batch):
    """Predictions stored per second through prediction_run._save, ``threads`` jobs at once."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from classifier.models import ModelVersion, PredictionChunk, PredictionJob
    from classifier.prediction_run import _save
    from ml.engine import ImagePrediction
    from portal.accounts.models import Clinic
    from portal.cases.models import Case
    from portal.cases.uploads import ingest

    tag = uuid.uuid4().hex[:6]
    clinic = Clinic.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}")
    user = get_user_model().objects.create_user(f"bench-{tag}")
    ModelVersion.objects.filter(is_active=True).update(is_active=False)
    ModelVersion.objects.create(
        architecture="vgg16", version=f"bench-{tag}", artifact_path="bench", artifact_sha256="0" * 64,
        threshold=0.5, is_active=True,
    )
    batches_per_thread = max(1, total // threads // batch)
    jobs = [[] for _ in range(threads)]
    seed = threads * 1_000_000 + total
    for t in range(threads):
        for b in range(batches_per_thread):
            case = Case.objects.create(clinic=clinic, patient_ref=f"B-{tag}-{t}-{b}", created_by=user)
            files = [
                SimpleUploadedFile(f"s{i}.png", tiny_image(seed), "image/png")
                for i in range(batch)
                if (seed := seed + 1)
            ]
            result = ingest(case, user, files, ["vgg16"])
            job = PredictionJob.objects.get(pk=result.jobs[0].pk)
            PredictionChunk.objects.filter(job=job).delete()  # none before a worker plans
            jobs[t].append((job, list(result.batch.scans_for_prediction().order_by("position"))))

    def work(index):
        for job, scans in jobs[index]:
            # As the worker does: chunks of JOB_CHUNK_SIZE scans, each stored per inference
            # batch of INFERENCE_BATCH_SIZE (16) in its own transaction.
            for number, first in enumerate(range(0, len(scans), settings.JOB_CHUNK_SIZE)):
                members = scans[first:first + settings.JOB_CHUNK_SIZE]
                chunk = PredictionChunk.objects.create(
                    job=job, round=job.round, index=number, scan_ids=[str(s.pk) for s in members]
                )
                for start in range(0, len(members), CHUNK):
                    part = members[start:start + CHUNK]
                    _save(chunk, part, [ImagePrediction(probability=0.42, label="no_tumor") for _ in part])

    seconds = in_threads(threads, work)
    stored = sum(job.predictions.filter(error="").count() for per in jobs for job, _ in per)
    expected = threads * batches_per_thread * batch
    assert stored == expected, (stored, expected)
    return stored / seconds


def redis_round_trips(app, count, threads):
    """Celery task messages published then consumed and acknowledged, per second."""
    from kombu import Queue

    queue_name = f"bench-scale-{uuid.uuid4().hex[:6]}"
    per_thread = count // threads

    def publish(index):
        with app.producer_or_acquire() as producer:
            for i in range(per_thread):
                app.send_task(
                    "classifier.tasks.run_prediction_job", args=[i], queue=queue_name, producer=producer
                )

    def consume(index):
        received = 0
        done = threading.Event()
        with app.connection_for_read() as conn:
            def on_message(body, message):
                nonlocal received
                message.ack()
                received += 1
                if received >= per_thread:
                    done.set()

            with conn.Consumer(Queue(queue_name), callbacks=[on_message], prefetch_count=1):
                while not done.is_set():
                    conn.drain_events(timeout=10)

    publish_seconds = in_threads(threads, publish)
    consume_seconds = in_threads(threads, consume)
    total = per_thread * threads
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue_name)
    return total / (publish_seconds + consume_seconds), total / publish_seconds, total / consume_seconds


def s3_rates(count, threads):
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    from portal.storage_config import build_storages  # noqa: F401 -- same settings as the portal

    payload = os.urandom(SCAN_BYTES)
    per_thread = count // threads
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    names = [[f"{prefix}/{t}/{i}.jpg" for i in range(per_thread)] for t in range(threads)]
    local = threading.local()

    def storage():
        # One storage (one boto3 session) per thread, as one per worker process.
        if not hasattr(local, "storage"):
            local.storage = storages.create_storage(storages.backends["default"])
        return local.storage

    def put(index):
        for name in names[index]:
            storage()._save(name, ContentFile(payload))

    def get(index):
        for name in names[index]:
            with storage().open(name, "rb") as handle:
                assert len(handle.read()) == SCAN_BYTES

    def client():
        if not hasattr(local, "client"):
            local.client = storage().connection.meta.client
        return local.client

    bucket = storages.backends["default"]["OPTIONS"]["bucket_name"]

    def raw_put(index):
        for name in names[index]:
            client().put_object(Bucket=bucket, Key=f"raw/{name}", Body=payload)

    def raw_get(index):
        for name in names[index]:
            assert len(client().get_object(Bucket=bucket, Key=f"raw/{name}")["Body"].read()) == SCAN_BYTES

    total = per_thread * threads
    rates = {}
    for label, work in (("put", put), ("get", get), ("raw_put", raw_put), ("raw_get", raw_get)):
        rates[label] = total / in_threads(threads, work)
    return rates


def main():
    args = parse_args()
    from _machine import machine_info
    from tests.fixtures.s3 import start_seaweedfs

    thread_counts = [int(t) for t in args.threads.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="neuroai-bench-scale-"))
    load_before = os.getloadavg()
    server = start_seaweedfs(workdir / "s3")
    try:
        portal_environment(pg_url=args.pg, db_name=DB_NAME, broker_url=args.redis, data_dir=workdir / "data",
                           CELERY_BROKER_KEY_PREFIX=f"neuroai-bench-scale-{os.getpid()}:", **server.env())
        (workdir / "data" / "staticfiles").mkdir(parents=True, exist_ok=True)
        recreate_database(args.pg, DB_NAME)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from portal.celery import app

        results = {"postgres_inserts_per_s": {}, "redis_round_trips_per_s": {}, "redis_publish_per_s": {},
                   "redis_consume_per_s": {}, "s3_put_per_s": {}, "s3_get_per_s": {},
                   "s3_raw_put_per_s": {}, "s3_raw_get_per_s": {}}
        for threads in thread_counts:
            rate = postgres_inserts(args.predictions, threads, args.batch)
            results["postgres_inserts_per_s"][threads] = round(rate, 1)
            trip, pub, con = redis_round_trips(app, args.messages, threads)
            results["redis_round_trips_per_s"][threads] = round(trip, 1)
            results["redis_publish_per_s"][threads] = round(pub, 1)
            results["redis_consume_per_s"][threads] = round(con, 1)
            for label, rate in s3_rates(args.objects, threads).items():
                results[f"s3_{label}_per_s"][threads] = round(rate, 1)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            import redis

            client = redis.Redis.from_url(args.redis)
            for key in client.scan_iter(match=f"neuroai-bench-scale-{os.getpid()}:*", count=500):
                client.delete(key)
        except Exception:  # noqa: BLE001 -- leftovers under a prefix of their own
            pass
        try:
            drop_database(args.pg, DB_NAME)
        except Exception:  # noqa: BLE001
            pass

    best = {key: max(values.values()) for key, values in results.items()}
    # Demand per image of one worker: one prediction row; one S3 GET by the worker (the scan)
    # and one PUT by the web process (the upload), plus a thumbnail PUT and GET when viewed;
    # Redis: one chunk task per JOB_CHUNK_SIZE (32) scans plus one per job and re-sends:
    # counted as 1/16 message per image, for margin.
    per_image = {
        "postgres": best["postgres_inserts_per_s"] / 1,
        "redis": best["redis_round_trips_per_s"] / (1 / CHUNK),
        "s3": 1 / (2 / best["s3_raw_get_per_s"] + 2 / best["s3_raw_put_per_s"]),
    }
    workers = {part: round(rate / args.worker_rate) for part, rate in per_image.items()}
    first = min(workers, key=workers.get)

    print(f"Shared parts, measured alone (threads: {args.threads}); load average before "
          f"{', '.join(f'{x:.2f}' for x in load_before)}, after {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'figure':38} " + " ".join(f"{t:>10} thr" for t in thread_counts))
    for key, values in results.items():
        print(f"{key:38} " + " ".join(f"{values[t]:>14}" for t in thread_counts))
    print(f"\nWorkers of {args.worker_rate} images/s each part can feed (best thread count):")
    for part, count in workers.items():
        print(f"  {part:9} {count:>8}  ({per_image[part]:.0f} images/s)")
    print(f"First to saturate: {first}")
    print(json.dumps({
        "bench": "scale_parts", "results": results,
        "images_per_s_each_part_can_feed": {k: round(v, 1) for k, v in per_image.items()},
        "workers_each_part_can_feed": workers, "saturates_first": first, "worker_rate": args.worker_rate,
        "load_before": [round(x, 2) for x in load_before], "machine": machine_info(),
    }))


if __name__ == "__main__":
    main()
