"""/healthz/live: the process answers, whatever its dependencies. /healthz: readiness, naming
what is down (database, broker, workers, scheduler), with details for staff only."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.fixtures.worker import worker_env

BASE_DIR = Path(__file__).resolve().parents[2]
# What an anonymous caller must never read in a health answer.
LEAKS = ("127.0.0.1", "localhost", "postgres", "redis", "Error", "refused", "port", "@")


def _start_beat(tmp_path, interval):
    env = {**worker_env(), "SWEEP_INTERVAL_SECONDS": str(interval)}
    log = open(tmp_path / "beat.log", "ab")
    command = [sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
               "--schedule", str(tmp_path / "beat-schedule")]
    return subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def _wait_for_heartbeat(timeout=90):
    from portal.health.models import Heartbeat

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Heartbeat.objects.filter(name=Heartbeat.SCHEDULER).exists():
            return
        time.sleep(0.3)
    raise AssertionError("beat's heartbeat never reached the database")


def test_healthz_is_200_with_everything_up_and_503_naming_the_scheduler_once_beat_dies(
    transactional_db, client, client_for, root, celery_worker, settings, tmp_path
):
    beat = _start_beat(tmp_path, interval=1)
    try:
        _wait_for_heartbeat()
        response = client.get("/healthz")
        body = response.json()
        assert response.status_code == 200, (body, client_for(root).get("/healthz").json())
        assert body == {
            "status": "ok", "down": [],
            "checks": {"database": "ok", "broker": "ok", "workers": "ok", "scheduler": "ok"},
        }
        assert socket.gethostname().encode() not in response.content  # no worker names
        details = client_for(root).get("/healthz").json()["details"]  # staff see who answered
        assert details["workers"]["workers"] and details["workers"]["queues_without_a_worker"] == []
    finally:
        _stop(beat)
    settings.SWEEP_INTERVAL_SECONDS = 1  # as the beat ran: stale after 2 s without a beat
    time.sleep(2.5)
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["down"] == ["scheduler"] and body["checks"]["scheduler"] == "down"


@pytest.fixture
def no_worker_to_wait_for(monkeypatch):
    """No worker runs in this test, so the workers check is down whatever its timeout: it
    need not wait its whole 2 s for answers that cannot come."""
    monkeypatch.setattr("portal.health.checks.INSPECT_TIMEOUT_SECONDS", 0.2)


@pytest.mark.django_db
def test_healthz_is_503_naming_the_scheduler_when_its_heartbeat_is_stale(client, settings, no_worker_to_wait_for):
    from portal.health.models import Heartbeat

    settings.SWEEP_INTERVAL_SECONDS = 60
    Heartbeat.stamp(Heartbeat.SCHEDULER, timezone.now() - timedelta(seconds=121))
    body = client.get("/healthz").json()
    assert "scheduler" in body["down"] and body["checks"]["scheduler"] == "down"
    Heartbeat.stamp(Heartbeat.SCHEDULER, timezone.now() - timedelta(seconds=100))
    response = client.get("/healthz")
    assert response.json()["checks"]["scheduler"] == "ok"


@pytest.mark.django_db
def test_healthz_without_any_heartbeat_yet_reports_the_scheduler_down(client, no_worker_to_wait_for):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["scheduler"] == "down"


@pytest.mark.django_db
def test_the_workers_answer_is_kept_so_polling_healthz_does_not_ask_every_worker_each_time(
    client, settings, no_worker_to_wait_for, monkeypatch
):
    """Asking the workers waits the whole inspect timeout: an anonymous caller polling /healthz
    held a web thread that long on every request and made every worker answer each one."""
    from portal.celery import app
    from portal.health import checks

    monkeypatch.setattr(checks, "_workers_answer", None)
    asked = []
    real_inspect = app.control.inspect

    def counted_inspect(*args, **kwargs):  # the real broadcast, counted
        asked.append(kwargs)
        return real_inspect(*args, **kwargs)

    monkeypatch.setattr(app.control, "inspect", counted_inspect)
    settings.HEALTH_WORKERS_CACHE_SECONDS = 60
    seen = [client.get("/healthz").json()["checks"]["workers"] for _ in range(3)]
    with ThreadPoolExecutor(8) as pool:  # requests at the same moment wait for one answer
        answers = list(pool.map(lambda _: checks.check_workers(), range(8)))
    assert len(asked) == 1
    assert seen == ["down"] * 3 and answers == [answers[0]] * 8 and answers[0][0] is False
    settings.HEALTH_WORKERS_CACHE_SECONDS = 0  # kept for no time: asked again
    client.get("/healthz")
    assert len(asked) == 2


def _run_in_process(env_overrides, code):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


GET_BOTH = (
    "from django.test import Client; c = Client(); "
    "live = c.get('/healthz/live'); ready = c.get('/healthz'); "
    "print(live.status_code); print(live.content.decode()); "
    "print(ready.status_code); print(ready.content.decode())"
)


def test_liveness_is_200_with_the_database_down_and_readiness_names_it_without_details():
    """A process whose database (and broker) sit on a port nobody listens on; HTTPS redirect
    on, as in production (probes come over plain HTTP)."""
    result = _run_in_process(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/neuroai",
            "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
            "SECURE_SSL_REDIRECT": "true",
        },
        GET_BOTH,
    )
    live_status, live_body, ready_status, ready_body = result.stdout.strip().splitlines()[-4:]
    assert live_status == "200", result.stdout + result.stderr
    assert json.loads(live_body) == {"status": "ok"}
    assert ready_status == "503"
    body = json.loads(ready_body)
    assert body["status"] == "down" and "database" in body["down"] and "details" not in body
    assert set(body["checks"].values()) == {"down"}
    for leak in LEAKS:
        assert leak not in ready_body, f"anonymous /healthz shows {leak!r}: {ready_body}"
    assert "OperationalError" in result.stderr  # the details go to the log instead


def test_healthz_is_503_naming_the_broker_when_it_points_at_a_closed_port():
    result = _run_in_process(
        {
            "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        },
        GET_BOTH,
    )
    ready_status, ready_body = result.stdout.strip().splitlines()[-2:]
    body = json.loads(ready_body)
    assert ready_status == "503", result.stdout + result.stderr
    assert "broker" in body["down"] and "workers" in body["down"]
    assert body["checks"]["database"] == "ok"
    for leak in LEAKS:
        assert leak not in ready_body, f"anonymous /healthz shows {leak!r}: {ready_body}"
