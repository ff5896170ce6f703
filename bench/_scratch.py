"""A scratch PostgreSQL database and a production-like portal environment for the bench/
scripts that run the portal itself (portal_batch, portal_load, portal_scale, scale_parts,
worker_memory): each creates its database afresh and drops it afterwards unless --keep."""
from __future__ import annotations

import os
from pathlib import Path


def _admin(pg_url: str, *statements: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{pg_url}/postgres")
    conn.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def recreate_database(pg_url: str, name: str) -> None:
    _admin(pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")


def drop_database(pg_url: str, name: str) -> None:
    _admin(pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def portal_environment(*, pg_url: str, db_name: str, broker_url: str, data_dir: Path, **extra: str) -> None:
    """Settings as in production (DEBUG off, quiet logs) on plain HTTP, for this process and
    the web or worker processes it starts; ``extra`` adds or overrides variables."""
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"{pg_url}/{db_name}",
        "CELERY_BROKER_URL": broker_url,
        "NEUROAI_DATA_DIR": str(data_dir),
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LOG_LEVEL": "WARNING",
        **extra,
    })
    (Path(data_dir) / "staticfiles").mkdir(parents=True, exist_ok=True)
