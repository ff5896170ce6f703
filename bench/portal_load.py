#!/usr/bin/env python
"""Page latency of the portal under a bounded load of concurrent logged-in users.

    .venv/bin/python bench/portal_load.py [--users 20] [--seconds 60] [--workers 3]
                                          [--big-scans 10000] [--other-cases 100]

It makes a scratch PostgreSQL database ``neuroai_loadbench`` (dropped and created) and a
temporary data directory, migrates, and seeds one clinic with bulk inserts:

  * one case with ``--big-scans`` scans and two model versions: 2 x 10,000 = 20,000
    predictions by default, a quarter of them reviewed;
  * ``--other-cases`` (100) further cases of 20 scans with one prediction each;
  * ``--users`` reviewers (they may open every page measured), one per simulated user.

Then it starts gunicorn (``--workers`` sync workers, as in docker-compose.yml) on loopback,
logs every user in through the login form, and has them all request pages back to back for
``--seconds`` (after a 5 s warm-up that is not counted), back to back or with ``--think``
seconds between pages on average, each user picking at random among:
case list, case page (the big case or another), review history (a random page of the big
case), review queue, scan page. Every response must be a 200; anything else, or a transport
error, counts as an error. The client is a thread pool with one ``requests`` session per
user in this process (HTML only: images and static files are not fetched).

It prints p50 / p95 / max per page, requests per second and errors, the load average before
and after, and last one JSON line with the figures and the machine (bench/_machine.py).
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from _scratch import drop_database, portal_environment, recreate_database  # noqa: E402

DB_NAME = "neuroai_loadbench"
PASSWORD = "load-bench-password-not-secret"
PAGES = ("case list", "case page", "review history", "review queue", "scan page")
WARMUP_SECONDS = 5
TARGET_P95_MS = 300


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--big-scans", type=int, default=10_000, help="scans of the big case (x2 models)")
    parser.add_argument("--other-cases", type=int, default=100)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a user waits between pages (uniform 0..2x); 0: back to back")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the data directory and database")
    return parser.parse_args()


def setup_environment(args, data_dir):
    portal_environment(pg_url=args.pg, db_name=DB_NAME, broker_url=args.redis, data_dir=data_dir,
                       SECRET_KEY="load-bench-only-secret-key-" + "x" * 40, LOGIN_FAILURE_LIMIT="1000")


def _case(clinic, user, ref, n_scans, versions, now, reviewers, review_share, rng):
    """One case, one batch, ``n_scans`` accepted scans (rows only), a prediction per scan
    and version, ``review_share`` of them reviewed."""
    from classifier.models import JobStatus, Prediction, PredictionJob, Review
    from portal.cases.models import Batch, Case, Scan

    case = Case.objects.create(clinic=clinic, patient_ref=ref, created_by=user,
                               last_activity_at=now - timedelta(minutes=rng.randint(0, 10_000)))
    batch = Batch.objects.create(case=case, uploaded_by=user, files_received=n_scans, accepted_count=n_scans)
    scans = Scan.objects.bulk_create(
        (Scan(case=case, batch=batch, position=i, original_name=f"{ref}-{i:05d}.jpg",
              status=Scan.Status.ACCEPTED, sha256=hashlib.sha256(f"{ref}/{i}".encode()).hexdigest(),
              file=f"scans/{clinic.pk}/{case.pk}/{i}.jpg", format="JPEG", size_bytes=1,
              width=256, height=256, created_at=now - timedelta(seconds=n_scans - i))
         for i in range(n_scans)),
        batch_size=5000,
    )
    predictions = []
    for version in versions:
        job = PredictionJob.objects.create(batch=batch, model_version=version, total=n_scans,
                                           done=n_scans, status=JobStatus.SUCCEEDED)
        rows = []
        for scan in scans:
            p = rng.random()
            rows.append(Prediction(scan=scan, model_version=version, job=job, probability=p,
                                   label="tumor" if p >= 0.5 else "no_tumor", threshold=0.5,
                                   created_at=scan.created_at))
        predictions += Prediction.objects.bulk_create(rows, batch_size=5000)
    reviewed = rng.sample(predictions, int(len(predictions) * review_share))
    Review.objects.bulk_create(
        (Review(prediction=p, scan=p.scan, reviewer=rng.choice(reviewers),
                verdict="confirmed" if rng.random() < 0.8 else "corrected", label=p.label)
         for p in reviewed),
        batch_size=5000,
    )
    return case, [scan.pk for scan in scans]


def seed(args):
    """Returns (user names, big case id, its scan ids, other case ids)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from classifier.models import ModelVersion
    from portal.accounts.models import Clinic, Membership

    rng = random.Random(args.seed)
    now = timezone.now()
    clinic = Clinic.objects.create(name="Load clinic", slug="load-clinic")
    User = get_user_model()
    hashed = make_password(PASSWORD)
    users = User.objects.bulk_create(User(username=f"user{i:02d}", password=hashed) for i in range(args.users))
    Membership.objects.bulk_create(Membership(user=u, clinic=clinic, role="reviewer") for u in users)
    versions = [
        ModelVersion.objects.create(architecture=arch, version="load", artifact_path=f"{arch}/load",
                                    artifact_sha256="0" * 64, metadata={}, threshold=0.5, is_active=True)
        for arch in ("vgg16", "resnet50")
    ]
    big, big_scans = _case(clinic, users[0], "BIG-0001", args.big_scans, versions, now, users, 0.25, rng)
    others = []
    for i in range(args.other_cases):
        case, _ = _case(clinic, users[i % len(users)], f"P-{i:04d}", 20, versions[:1], now, users, 0.5, rng)
        others.append(case.pk)
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would have done by then
        cursor.execute("VACUUM ANALYZE")
    return [u.username for u in users], big.pk, big_scans, others


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, data_dir, port):
    log = open(data_dir / "gunicorn.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--timeout", "120", "--log-level", "warning"],
        cwd=BASE_DIR, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited; see {data_dir / 'gunicorn.log'}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz/live", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit("gunicorn did not answer in 60 s")


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def login(base, username):
    import requests

    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"}, timeout=30, allow_redirects=False,
    )
    if response.status_code != 302:
        raise SystemExit(f"login of {username} answered {response.status_code}")
    return session


def pick(rng, base, big, big_scans, others, history_pages):
    page = rng.choice(PAGES)
    if page == "case list":
        return page, f"{base}/"
    if page == "case page":
        case = big if rng.random() < 0.5 else rng.choice(others)
        return page, f"{base}/cases/{case}/"
    if page == "review history":
        return page, f"{base}/reviews/cases/{big}/history/?page={rng.randint(1, history_pages)}"
    if page == "review queue":
        return page, f"{base}/reviews/"
    return page, f"{base}/scans/{rng.choice(big_scans)}/"


def run_load(args, base, usernames, big, big_scans, others):
    from portal.reviews.views import HISTORY_SCANS_PER_PAGE

    history_pages = -(-len(big_scans) // HISTORY_SCANS_PER_PAGE)
    sessions = [login(base, name) for name in usernames]
    samples = {page: [] for page in PAGES}
    errors = {page: 0 for page in PAGES}
    error_examples = []
    lock = threading.Lock()
    start = time.monotonic()
    measure_from = start + WARMUP_SECONDS
    stop_at = measure_from + args.seconds

    def user(index):
        rng = random.Random(args.seed * 1000 + index)
        session = sessions[index]
        while True:
            sent_at = time.monotonic()
            if sent_at >= stop_at:
                return
            page, url = pick(rng, base, big, big_scans, others, history_pages)
            began = time.perf_counter()
            try:
                response = session.get(url, timeout=120, allow_redirects=False)
                status, size = response.status_code, len(response.content)
            except Exception as exc:  # a transport error is an error like a 500
                status, size = f"{type(exc).__name__}", 0
            elapsed = time.perf_counter() - began
            if sent_at < measure_from:  # warm-up: not counted
                continue
            with lock:  # every request sent inside the window counts, however long it took
                samples[page].append((elapsed, size))
                if status != 200:
                    errors[page] += 1
                    if len(error_examples) < 5:
                        error_examples.append(f"{page} {url} -> {status}")
            if args.think:
                time.sleep(rng.uniform(0, 2 * args.think))

    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        list(pool.map(user, range(len(sessions))))
    return samples, errors, error_examples


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(q / 100 * len(values) + 0.5)) - 1))]


def main():
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="neuroai-loadbench-"))
    setup_environment(args, data_dir)
    from _machine import loadavg, machine_info

    recreate_database(args.pg, DB_NAME)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    usernames, big, big_scans, others = seed(args)
    seed_seconds = time.perf_counter() - began
    from django.db import connections

    connections.close_all()
    print(f"seeded {2 * len(big_scans)} predictions in the big case and {len(others)} other cases "
          f"in {seed_seconds:.1f} s", flush=True)
    port = free_port()
    server = start_gunicorn(args, data_dir, port)
    load_before = loadavg()
    try:
        samples, errors, examples = run_load(args, f"http://127.0.0.1:{port}", usernames, big, big_scans, others)
    finally:
        stop(server)
    load_after = loadavg()

    rows = {}
    total = 0
    print(f"\n{args.users} users, think time {args.think} s, {args.seconds} s, gunicorn {args.workers} workers; "
          f"load average before {load_before}, after {load_after}")
    print(f"{'page':<16}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'KB':>7}{'errors':>8}")
    for page in PAGES:
        times = [t * 1000 for t, _ in samples[page]]
        sizes = [s for _, s in samples[page]]
        total += len(times)
        rows[page] = {
            "requests": len(times),
            "p50_ms": round(percentile(times, 50), 1),
            "p95_ms": round(percentile(times, 95), 1),
            "max_ms": round(max(times), 1) if times else None,
            "mean_kb": round(statistics.mean(sizes) / 1024, 1) if sizes else None,
            "errors": errors[page],
        }
        r = rows[page]
        print(f"{page:<16}{r['requests']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['max_ms']:>9}{r['mean_kb']:>7}{r['errors']:>8}")
    all_times = [t * 1000 for page in PAGES for t, _ in samples[page]]
    print(f"{'all':<16}{total:>9}{percentile(all_times, 50):>9.1f}{percentile(all_times, 95):>9.1f}"
          f"{max(all_times):>9.1f}{'':>7}{sum(errors.values()):>8}")
    print(f"{total / args.seconds:.1f} requests/s; target p95 < {TARGET_P95_MS} ms per page and 0 errors: "
          + ("met" if all(r["p95_ms"] < TARGET_P95_MS for r in rows.values()) and not sum(errors.values())
             else "NOT met"))
    for example in examples:
        print("error:", example)
    if not args.keep:
        drop_database(args.pg, DB_NAME)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps({
        "bench": "portal_load", "users": args.users, "think_seconds": args.think, "seconds": args.seconds,
        "gunicorn_workers": args.workers, "big_case_predictions": 2 * len(big_scans),
        "other_cases": len(others), "pages": rows, "requests_per_second": round(total / args.seconds, 1),
        "errors": sum(errors.values()), "seed_seconds": round(seed_seconds, 1),
        "loadavg_before": load_before, "loadavg_after": load_after, "machine": machine_info(),
    }))


if __name__ == "__main__":
    main()
