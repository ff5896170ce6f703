#!/usr/bin/env python
"""End-to-end benchmark of the portal path for one batch of images.

    .venv/bin/python bench/portal_batch.py [--images 100] [--arch vgg16] [--weights none|ARTIFACT_DIR]
                                           [--input-size 224] [--data DIR] [--batch-size 16]

Upload request (Django test client, full middleware and the real intake and storage) ->
batch, scans and job committed -> task through Redis -> one real Celery worker process ->
every prediction stored in PostgreSQL. It measures, in one run:

  * end to end: seconds from sending the upload request until the last prediction is stored,
    and images per second over that time (the worker had already loaded the model: a small
    warm-up batch goes first, and its time, model load included, is printed too);
  * the inference engine's own images per second on the same model and images, in this
    process with the same thread settings, while the worker is idle.

It uses its own scratch resources: a PostgreSQL database ``neuroai_bench`` (dropped and
created), Redis database 14 and a temporary data directory, so it never touches real data.
Images: generated brain-like pictures, or the JPEG/PNG files under ``--data`` (default
``../shared/datasets/brain-mri-navoneel`` when present; use ``--data generated`` to force
generated ones). It prints a table, then one JSON line with the figures and the machine.
"""

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _scratch import drop_database, portal_environment, recreate_database

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA = BASE_DIR.parent / "shared" / "datasets" / "brain-mri-navoneel"
DB_NAME = "neuroai_bench"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--arch", choices=["vgg16", "resnet50"], default="vgg16")
    parser.add_argument("--weights", default="none", help='"none" (untrained) or an ml/ artifact directory')
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else "generated")
    parser.add_argument("--batch-size", type=int, default=16, help="INFERENCE_BATCH_SIZE")
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: TF default)")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and database")
    return parser.parse_args()


def setup_environment(args, data_dir):
    portal_environment(pg_url=args.pg, db_name=DB_NAME, broker_url=args.redis, data_dir=data_dir,
                       INFERENCE_BATCH_SIZE=str(args.batch_size), TF_INTRA_OP_THREADS=str(args.threads))


def generated_images(n, seed=0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = int(rng.integers(220, 320)), int(rng.integers(220, 320))
        yy, xx = np.mgrid[0:h, 0:w]
        head = ((xx - w / 2) / (w * 0.33)) ** 2 + ((yy - h / 2) / (h * 0.38)) ** 2 <= 1
        arr = np.zeros((h, w), np.float64)
        arr[head] = 110 + rng.normal(0, 14, head.sum())
        if i % 2:
            cx, cy = w / 2 + rng.uniform(-25, 25), h / 2 + rng.uniform(-25, 25)
            arr[((xx - cx) ** 2 + (yy - cy) ** 2) <= (min(w, h) * 0.07) ** 2] = 240
        buffer = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB").save(buffer, "JPEG", quality=90)
        out.append((f"generated-{i:03d}.jpg", buffer.getvalue()))
    return out


def dataset_images(folder, n):
    """``n`` distinct images from ``folder``, alternating between its sub-folders (classes).

    The data set holds byte-identical copies under different names; the portal would store
    them once (as duplicates), so the bench skips them to time ``n`` real predictions."""
    import hashlib

    groups = {}
    seen = set()
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        groups.setdefault(path.parent.name, []).append((f"{path.parent.name}-{path.name}", data))
    if not groups:
        raise SystemExit(f"no JPEG/PNG files under {folder}")
    ordered = [item for batch in zip(*groups.values(), strict=False) for item in batch]  # interleaved, then the rest
    ordered += [item for group in groups.values() for item in group[min(map(len, groups.values())):]]
    if len(ordered) < n:
        raise SystemExit(f"only {len(ordered)} distinct images under {folder}; ask for fewer")
    return ordered[:n]


def register_model(args, model_root):
    from classifier.models import ModelVersion
    from ml.artifacts import read_metadata, save_artifact

    if args.weights == "none":
        from ml.builders import build_classifier

        target = model_root / f"bench-{args.arch}-{args.input_size}"
        model = build_classifier(args.arch, weights="none", input_size=args.input_size)
        save_artifact(model, target, architecture=args.arch, input_size=args.input_size,
                      metrics={"note": "untrained, for timing only"}, dataset_fingerprint="bench")
        del model
    else:
        target = model_root / Path(args.weights).name
        shutil.copytree(args.weights, target)
    meta = read_metadata(target)
    meta.pop("path", None)
    version = ModelVersion.objects.create(
        architecture=meta["architecture"], version="bench", artifact_path=str(target),
        artifact_sha256=meta["model_sha256"], metadata=meta, threshold=meta["threshold"],
    )
    version.activate()
    return version, target, meta


def start_worker(data_dir):
    from portal.celery import app

    app.control.purge()
    log = open(data_dir / "worker.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "inference,default,heatmap",
         "--concurrency", "1", "--pool", "prefork", "--loglevel", "WARNING", "-n", "bench@%h"],
        cwd=BASE_DIR, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the worker exited; see {data_dir / 'worker.log'}")
        if app.control.ping(timeout=1.0):
            return process
    raise SystemExit("the worker did not answer in 120 s")


def stop_worker(process):
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def upload_and_wait(client, case, images, arch, timeout=3600):
    """POST one batch through the portal; return (request seconds, end-to-end seconds, job)."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from classifier.models import PredictionJob
    from portal.cases.models import Batch

    files = [SimpleUploadedFile(name, data, "image/jpeg") for name, data in images]
    started = time.perf_counter()
    response = client.post(reverse("cases:upload", kwargs={"case_id": case.pk}), {"files": files, "models": [arch]})
    request_s = time.perf_counter() - started
    if response.status_code != 302:
        raise SystemExit(f"upload answered {response.status_code}: {response.content[:500]!r}")
    batch = Batch.objects.get(pk=response["Location"].rstrip("/").split("/")[-1])
    job = PredictionJob.objects.get(batch=batch)
    while True:
        job.refresh_from_db()
        if job.is_finished:
            break
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the job did not finish in {timeout} s: {job.status} {job.done}/{job.total}")
        time.sleep(0.05)
    return request_s, time.perf_counter() - started, job, batch


def engine_rate(target, images, batch_size, threads, repeats=2):
    from django.conf import settings

    from ml.engine import InferenceEngine

    # the runtime the worker uses (ML_RUNTIME), so that the two figures compare like with like
    engine = InferenceEngine(intra_op_threads=threads or None, runtime=settings.ML_RUNTIME)
    loaded = engine.load(target)
    payloads = [data for _, data in images]
    loaded.predict_bytes(payloads[: min(batch_size, len(payloads))], batch_size=batch_size)  # warm-up
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(payloads), batch_size):
            loaded.predict_bytes(payloads[i:i + batch_size], batch_size=batch_size)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return len(payloads) / best, best


def machine():
    try:
        sys.path.insert(0, str(BASE_DIR))
        from bench._machine import machine_info

        return machine_info()
    except Exception:
        model = "unknown"
        try:
            for line in open("/proc/cpuinfo"):
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
                "loadavg": list(os.getloadavg())}


def main():
    args = parse_args()
    sys.path.insert(0, str(BASE_DIR))
    data_dir = Path(tempfile.mkdtemp(prefix="neuroai-bench-"))
    setup_environment(args, data_dir)
    recreate_database(args.pg, DB_NAME)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from classifier.models import Prediction
    from portal.accounts.models import Clinic, Membership
    from portal.cases.models import Case

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.org", "unused-password")
    clinic = Clinic.objects.create(name="Bench clinic", slug="bench")
    Membership.objects.create(user=user, clinic=clinic, role="clinician")
    case = Case.objects.create(clinic=clinic, patient_ref="BENCH-1", created_by=user)
    version, target, meta = register_model(args, Path(settings.MODEL_ROOT))
    if args.data == "generated":
        images = generated_images(args.images)
        source = "generated"
    else:
        images = dataset_images(args.data, args.images)
        source = str(args.data)
    warmup = generated_images(4, seed=99)
    worker = start_worker(data_dir)
    try:
        client = Client()
        client.force_login(user)
        warm_request_s, warm_total_s, _, _ = upload_and_wait(client, case, warmup, meta["architecture"])
        request_s, total_s, job, batch = upload_and_wait(client, case, images, meta["architecture"])
    finally:
        stop_worker(worker)
    stored = Prediction.objects.filter(scan__batch=batch).count()
    accepted = batch.accepted_count
    rate_engine, engine_s = engine_rate(target, images, args.batch_size, args.threads)
    rate_e2e = accepted / total_s
    rows = [
        ("images sent / accepted / predictions stored", f"{len(images)} / {accepted} / {stored}"),
        ("job status", f"{job.status} (done {job.done}, failed {job.failed})"),
        ("model", f"{meta['architecture']} input {meta['input_size']} weights {args.weights}"),
        ("runtime (ML_RUNTIME)", settings.ML_RUNTIME),
        ("warm-up batch of 4, model load included (s)", f"{warm_total_s:.2f}"),
        (f"upload request, {len(images)} files (s)", f"{request_s:.2f}"),
        ("end to end: upload -> all stored (s)", f"{total_s:.2f}"),
        ("end to end (images/s)", f"{rate_e2e:.2f}"),
        ("inference engine alone (images/s)", f"{rate_engine:.2f}  ({engine_s:.2f} s, best of 2)"),
        ("end to end / engine", f"{rate_e2e / rate_engine:.0%}"),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    result = {
        "bench": "portal_batch",
        "images": len(images), "accepted": accepted, "stored": stored, "source": source,
        "architecture": meta["architecture"], "input_size": meta["input_size"], "weights": args.weights,
        "inference_batch_size": args.batch_size, "runtime": settings.ML_RUNTIME,
        "tf_intra_op_threads": args.threads or None,
        "upload_request_s": round(request_s, 3), "end_to_end_s": round(total_s, 3),
        "end_to_end_images_per_s": round(rate_e2e, 3), "engine_images_per_s": round(rate_engine, 3),
        "warmup_with_model_load_s": round(warm_total_s, 3), "job_status": job.status,
        "machine": machine(), "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    print(json.dumps(result))
    from django.db import connections

    connections.close_all()
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
        drop_database(args.pg, DB_NAME)
    return 0 if stored == accepted and job.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
