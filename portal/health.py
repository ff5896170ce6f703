"""GET /healthz: is the database reachable, the broker reachable, a worker alive?"""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.celery import app as celery_app

BROKER_TIMEOUT_SECONDS = 3
PING_TIMEOUT_SECONDS = 2.0


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def check_broker():
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    return {"ok": True}


def check_workers():
    replies = celery_app.control.ping(timeout=PING_TIMEOUT_SECONDS) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return {"ok": False, "error": "no worker answered the ping"}
    return {"ok": True, "workers": names}


CHECKS = {"database": check_database, "broker": check_broker, "workers": check_workers}


@never_cache
@require_GET
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        if name == "workers" and not results.get("broker", {}).get("ok"):
            results[name] = {"ok": False, "error": "broker is down, workers cannot be asked"}
            continue
        try:
            results[name] = check()
        except Exception as exc:  # each check reports its own failure
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    down = [name for name, result in results.items() if not result["ok"]]
    body = {"status": "ok" if not down else "down", "down": down, "checks": results}
    return JsonResponse(body, status=200 if not down else 503)
