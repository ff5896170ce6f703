"""Production settings: strict parsing, required secrets, a clean deploy check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
    "ALLOWED_HOSTS": "neuroai.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
}
CLEARED = ["SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]


def manage(*args, **env):
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_under_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_refuses_to_start_without_secret_key_when_debug_is_off():
    result = manage("check", **{**PRODUCTION_ENV, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "Set the environment variable SECRET_KEY" in result.stderr


def test_malformed_boolean_is_an_error_not_a_default():
    result = manage("check", **{**PRODUCTION_ENV, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_malformed_database_url_is_an_error():
    result = manage("check", **{**PRODUCTION_ENV, "DATABASE_URL": "mysq1://nowhere"})
    assert result.returncode != 0
    assert "DATABASE_URL must be a URL" in result.stderr


@pytest.mark.slow  # a manage.py process
def test_embedded_defaults_need_no_server(tmp_path):
    """With no DATABASE_URL or broker set, the app uses SQLite and the filesystem broker."""
    env = {"DEBUG": "true", "NEUROAI_DATA_DIR": str(tmp_path), "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    result = manage("migrate", "--noinput", **env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "db.sqlite3").exists()
    code = "from django.conf import settings; print(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT)"
    result = manage("shell", "-c", code, **env)
    # the transport that writes each message whole (tests/portal/test_filesystem_broker.py)
    assert result.stdout.strip().splitlines()[-1] == "filesystem:// portal.filesystem_broker:Transport"


def test_unknown_ml_runtime_is_an_error_not_a_default():
    result = manage("check", **{**PRODUCTION_ENV, "ML_RUNTIME": "tpu"})
    assert result.returncode != 0
    assert "ML_RUNTIME must be one of keras, bf16, auto" in result.stderr


@pytest.mark.slow  # a manage.py process that loads TensorFlow: one for both settings
def test_worker_engine_takes_its_runtime_and_intake_limits_from_the_environment():
    code = ("from classifier.engine import get_engine; import sys; e = get_engine(); l = e.limits; "
            "sys.stdout.write(f'{e.runtime} {l.min_side} {l.max_aspect} {l.work_budget_bytes} {l.max_pixels}')")
    env = {**PRODUCTION_ENV, "ML_RUNTIME": "bf16", "UPLOAD_MIN_SIDE_PX": "100", "UPLOAD_MAX_ASPECT_RATIO": "3",
           "IMAGE_WORK_BUDGET_MB": "300", "UPLOAD_MAX_PIXELS": "9000000"}
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"bf16 100 3.0 {300 * 1024 * 1024} 9000000")
