#!/usr/bin/env python
"""One batch, many workers: a 240-scan batch through upload, Redis, object storage and
PostgreSQL with 1 worker and then 2 workers (one inference thread each).

    .venv/bin/python bench/portal_scale.py [--images 240] [--workers 1,2] [--storage s3|local|both]
                                           [--chunk 16] [--threads 1]

For each worker count it starts that many `celery worker --concurrency 1` processes (each with
TF_INTRA_OP_THREADS=--threads), warms them up (every worker loads the model), then uploads the
batch through the upload view (Django test client, real intake and storage) to a new case and
times upload -> every prediction stored. The job is cut into chunks of --chunk scans that the
workers share. It also times the inference engine alone in this process at the same thread
count, so the figures say how close the whole path comes to the engine. The model is the
shipped VGG16 (`install_shipped_models`). With --storage s3 a SeaweedFS server is started on
loopback (as the tests do) and scans and artifacts live in its bucket; --storage both runs the
bench once per storage and prints the S3 overhead. Scratch resources as in portal_batch.py.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench import portal_batch as pb  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--storage", choices=["s3", "local", "both"], default="s3")
    parser.add_argument("--chunk", type=int, default=16, help="JOB_CHUNK_SIZE")
    parser.add_argument("--threads", type=int, default=1, help="TF intra-op threads per worker")
    parser.add_argument("--batch-size", type=int, default=16, help="INFERENCE_BATCH_SIZE")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    return parser.parse_args()


def start_workers(count, data_dir):
    from portal.celery import app

    app.control.purge()
    processes = []
    for index in range(count):
        log = open(data_dir / f"worker-{index}.log", "ab")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "inference,heatmap,default",
             "--concurrency", "1", "--pool", "prefork", "--loglevel", "WARNING", "-n", f"scale-{index}@%h"],
            cwd=BASE_DIR, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        ))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return processes
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"a worker exited; see {data_dir}/worker-*.log")
    raise SystemExit(f"{count} workers did not answer in 180 s")


def upload(client, clinic, user, images, label):
    from portal.cases.models import Case

    case = Case.objects.create(clinic=clinic, patient_ref=f"SCALE-{label}", created_by=user)
    return pb.upload_and_wait(client, case, images, "vgg16")


def run_one(args, storage):
    data_dir = Path(tempfile.mkdtemp(prefix="neuroai-bench-scale-"))
    pb.setup_environment(args, data_dir)
    os.environ.update(JOB_CHUNK_SIZE=str(args.chunk), TF_INTRA_OP_THREADS=str(args.threads),
                      TF_INTER_OP_THREADS="1", NEUROAI_ENV_FILE=str(data_dir / "absent.env"))
    s3 = None
    if storage == "s3":
        from tests.fixtures.s3 import start_seaweedfs

        s3 = start_seaweedfs(data_dir / "s3")
        os.environ.update(s3.env())
        os.environ["S3_BUCKET"] = "neuroai-bench"
    pb.recreate_database(args.pg, pb.DB_NAME)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from classifier.engine import artifact_dir
    from classifier.models import ModelVersion, Prediction
    from portal.accounts.models import Clinic, Membership

    call_command("migrate", verbosity=0)
    if s3:
        call_command("ensure_bucket", verbosity=0)
    # In a child process: assembling the model here would start TensorFlow with its default
    # thread count, and the engine figure below must use --threads like the workers.
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "install_shipped_models"],
                   check=True, env=os.environ, cwd=BASE_DIR, stdout=subprocess.DEVNULL)
    version = ModelVersion.active("vgg16")
    user = get_user_model().objects.create_user("bench", "bench@example.org", "unused-password")
    clinic = Clinic.objects.create(name="Bench clinic", slug="bench")
    Membership.objects.create(user=user, clinic=clinic, role="clinician")
    client = Client()
    client.force_login(user)
    images = pb.generated_images(args.images)
    results = {}
    try:
        for count in [int(n) for n in args.workers.split(",")]:
            workers = start_workers(count, data_dir)
            try:
                upload(client, clinic, user, pb.generated_images(8 * count * 4, seed=count + 7), f"warm-{count}")
                request_s, total_s, job, batch = upload(client, clinic, user, images, f"run-{count}")
            finally:
                for worker in workers:
                    pb.stop_worker(worker)
            stored = Prediction.objects.filter(scan__batch=batch, error="").count()
            per_worker = {}
            for chunk in job.chunks.all():
                name = chunk.worker.split(" pid ")[0]
                per_worker[name] = per_worker.get(name, 0) + len(chunk.scan_ids)
            results[count] = {"seconds": round(total_s, 2), "images_per_s": round(stored / total_s, 2),
                              "stored": stored, "status": job.status, "scans_per_worker": per_worker,
                              "upload_request_s": round(request_s, 2)}
        engine, _ = pb.engine_rate(artifact_dir(version), images, args.batch_size, args.threads)
    finally:
        from django.db import connections

        connections.close_all()
        if s3:
            s3.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        pb.drop_database(args.pg, pb.DB_NAME)
    return {"storage": storage, "runs": results, "engine_images_per_s": round(engine, 2),
            "input_size": version.metadata.get("input_size"), "version": version.version}


def main():
    args = parse_args()
    if args.storage == "both":  # settings are read once per process: one child per storage
        figures = []
        for storage in ("local", "s3"):
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--storage", storage],
                                 capture_output=True, text=True)
            print(out.stdout, end="")
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return out.returncode
            figures.append(json.loads(out.stdout.strip().splitlines()[-1]))
        local, s3 = figures
        one_local, one_s3 = local["runs"]["1"]["images_per_s"], s3["runs"]["1"]["images_per_s"]
        print(f"S3 overhead, 1 worker: {one_local} -> {one_s3} images/s "
              f"(S3 costs {1 - one_s3 / one_local:.0%} of the local rate)")
        print(json.dumps({"bench": "portal_scale", "local": local, "s3": s3,
                          "s3_overhead_1_worker": round(1 - one_s3 / one_local, 3), "machine": pb.machine(),
                          "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}))
        return 0
    figures = run_one(args, args.storage)
    runs, engine = figures["runs"], figures["engine_images_per_s"]
    print(f"\nstorage {figures['storage']}, shipped VGG16 {figures['version']} at {figures['input_size']} px, "
          f"{args.images} generated scans, chunks of {args.chunk}, {args.threads} inference thread(s) per worker")
    print(f"inference engine alone, {args.threads} thread(s): {engine} images/s")
    for count, run in runs.items():
        print(f"{count} worker(s): {run['seconds']} s, {run['images_per_s']} images/s, "
              f"{run['stored']} stored, {run['status']}, scans per worker {run['scans_per_worker']}, "
              f"{run['images_per_s'] / engine:.0%} of one engine")
    if 1 in runs and 2 in runs:
        print(f"2 workers / 1 worker: {runs[2]['images_per_s'] / runs[1]['images_per_s']:.2f}x")
    print(json.dumps({**figures, "runs": {str(k): v for k, v in runs.items()}, "machine": pb.machine(),
                      "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
