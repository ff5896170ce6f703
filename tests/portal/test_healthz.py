"""GET /healthz names what is down."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_healthz_is_200_with_database_broker_and_worker_up(client, celery_worker):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["broker"]["ok"]
    assert body["checks"]["workers"]["workers"]


def test_healthz_is_503_naming_the_broker_when_it_points_at_a_closed_port():
    """A separate process whose settings point the broker at a port nobody listens on."""
    code = (
        "import json; from django.test import Client; r = Client().get('/healthz'); "
        "print(r.status_code); print(r.content.decode())"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )
    status, body = result.stdout.strip().splitlines()[-2:]
    body = json.loads(body)
    assert status == "503", result.stdout + result.stderr
    assert "broker" in body["down"]
    assert "workers" in body["down"]
    assert body["checks"]["database"]["ok"]
