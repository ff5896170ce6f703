#!/usr/bin/env python
"""Peak memory of a worker that meets a hostile image: a 20 x 100000 grey PNG (5 KB, 2
megapixels) in one batch with 50 good scans, predicted by both models (VGG16 and ResNet50).

    .venv/bin/python bench/worker_memory.py [--good 50] [--input-size 224] [--worker-limits relaxed|default]

The strip is stored as an accepted scan (the upload page's shape check is relaxed in this
process only), so the worker must deal with it: with ``--worker-limits relaxed`` (the default
here) the worker's own shape checks are relaxed too and the strip goes through decoding and the
bounded preprocessing; with ``default`` the worker refuses it by its shape. The bench samples
the resident memory of the worker's pool child every 50 ms (psutil) and prints its peak, the
predictions stored and the strip's result. Scratch resources as in bench/portal_batch.py (its
own database, Redis database 14, a temporary data folder). Untrained models (weights none): the
figure is memory, not accuracy.
"""

import argparse
import datetime as dt
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench import portal_batch as pb  # noqa: E402

RELAXED = {"UPLOAD_MAX_ASPECT_RATIO": "100000", "UPLOAD_MIN_SIDE_PX": "1"}


def strip_png(width=20, height=100_000):
    import numpy as np
    from PIL import Image

    # Grey bands a few thousand rows high: a few KB of PNG with enough structure to pass the
    # content checks, so the worker really decodes and preprocesses it.
    rows = (30 + 40 * ((np.arange(height) // 4000) % 6)).astype(np.uint8)[:, None]
    arr = np.repeat(rows, width, axis=1)
    out = io.BytesIO()
    Image.fromarray(arr, "L").save(out, "PNG", optimize=True)
    return out.getvalue()


def sample_peak(process, stop, peak):
    import psutil

    parent = psutil.Process(process.pid)
    while not stop.is_set():
        try:
            for child in parent.children(recursive=True):
                peak[0] = max(peak[0], child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=50)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--worker-limits", choices=["relaxed", "default"], default="relaxed")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    args.batch_size, args.threads, args.keep = 16, 0, False

    data_dir = Path(tempfile.mkdtemp(prefix="neuroai-bench-mem-"))
    pb.setup_environment(args, data_dir)
    os.environ.update(RELAXED)  # this process stores the strip as an accepted scan
    pb.recreate_database(args.pg, pb.DB_NAME)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import transaction

    from classifier.models import Prediction, PredictionJob
    from portal.accounts.models import Clinic, Membership
    from portal.cases.models import Case
    from portal.cases.uploads import ingest

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.org", "unused-password")
    clinic = Clinic.objects.create(name="Bench clinic", slug="bench")
    Membership.objects.create(user=user, clinic=clinic, role="clinician")
    case = Case.objects.create(clinic=clinic, patient_ref="BENCH-MEM", created_by=user)
    for arch in ("vgg16", "resnet50"):
        args.arch, args.weights = arch, "none"
        pb.register_model(args, Path(settings.MODEL_ROOT))

    good = pb.generated_images(args.good)
    files = [SimpleUploadedFile(name, data, "image/jpeg") for name, data in good]
    files.insert(args.good // 2, SimpleUploadedFile("strip-20x100000.png", strip_png(), "image/png"))

    worker_env = dict(os.environ)
    if args.worker_limits == "default":
        for name in RELAXED:
            worker_env.pop(name)
    saved_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(worker_env)
    worker = pb.start_worker(data_dir)
    os.environ.clear()
    os.environ.update(saved_env)
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=sample_peak, args=(worker, stop, peak), daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        with transaction.atomic():
            result = ingest(case, user, files, ["vgg16", "resnet50"])
        jobs = list(PredictionJob.objects.filter(batch=result.batch))
        while not all(job.is_finished for job in jobs):
            time.sleep(0.2)
            for job in jobs:
                job.refresh_from_db()
            if time.perf_counter() - started > 1800:
                raise SystemExit("the jobs did not finish in 30 min")
    finally:
        stop.set()
        sampler.join()
        pb.stop_worker(worker)
    elapsed = time.perf_counter() - started
    batch = result.batch
    stored = Prediction.objects.filter(scan__batch=batch, error="")
    strip = batch.scans.get(original_name="strip-20x100000.png")
    strip_results = {p.model_version.architecture: (p.error or f"{p.label} {p.probability:.3f}")
                     for p in Prediction.objects.filter(scan=strip).select_related("model_version")}
    per_model = {arch: stored.filter(model_version__architecture=arch).exclude(scan=strip).count()
                 for arch in ("vgg16", "resnet50")}
    rows = [
        ("good scans / strip", f"{args.good} / 1 (20 x 100000 PNG, {len(strip_png()) // 1024} KB)"),
        ("worker limits", args.worker_limits),
        ("jobs", ", ".join(f"{j.model_version.architecture}: {j.status}" for j in jobs)),
        ("good scans predicted (vgg16 / resnet50)", f"{per_model['vgg16']} / {per_model['resnet50']}"),
        ("the strip at upload", f"{strip.status} {strip.rejection_reason}".strip()),
        ("the strip's result", "; ".join(f"{k}: {v}" for k, v in strip_results.items()) or "none"),
        ("peak RSS of the worker child (MB)", f"{peak[0] / 2**20:.0f}"),
        ("wall time (s)", f"{elapsed:.1f}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(json.dumps({
        "bench": "worker_memory", "good": args.good, "input_size": args.input_size,
        "worker_limits": args.worker_limits, "predicted": per_model, "strip": strip_results,
        "strip_upload": f"{strip.status} {strip.rejection_reason}".strip(),
        "peak_child_rss_mb": round(peak[0] / 2**20), "wall_s": round(elapsed, 1),
        "machine": pb.machine(), "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }))
    from django.db import connections

    connections.close_all()
    shutil.rmtree(data_dir, ignore_errors=True)
    pb.drop_database(args.pg, pb.DB_NAME)
    return 0 if per_model == {"vgg16": args.good, "resnet50": args.good} else 1


if __name__ == "__main__":
    sys.exit(main())
