"""GET /healthz/live: the process answers (no dependency is touched, so a database outage
never gets web processes restarted). GET /healthz: readiness, whether the database, the
broker, the workers (one for every queue) and the scheduler are up; 200 only when all are.

Anonymous callers see "ok"/"down" per check. Staff see the details (errors, worker names),
which also go to the log."""

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.health.checks import CHECKS, NEEDS, Result

log = logging.getLogger(__name__)


def run_checks() -> dict[str, Result]:
    results: dict[str, Result] = {}
    for name, check in CHECKS.items():
        needed = NEEDS.get(name)
        if needed and not results[needed][0]:
            results[name] = (False, {"error": f"not checked: {needed} is down"})
            continue
        try:
            results[name] = check()
        except Exception as exc:  # each check reports its own failure
            results[name] = (False, {"error": f"{type(exc).__name__}: {exc}"[:300]})
        if not results[name][0]:
            log.warning("health check %s is down: %s", name, results[name][1])
    return results


def _may_see_details(request: HttpRequest) -> bool:
    try:  # reading the session needs the database, which may be the thing that is down
        user = request.user
        return bool(user.is_authenticated and (user.is_staff or user.is_superuser))
    except Exception:
        return False


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    results = run_checks()
    down = [name for name, (ok, _) in results.items() if not ok]
    body: dict[str, Any] = {
        "status": "down" if down else "ok",
        "down": down,
        "checks": {name: "ok" if ok else "down" for name, (ok, _) in results.items()},
    }
    if _may_see_details(request):
        body["details"] = {name: details for name, (_, details) in results.items()}
    return JsonResponse(body, status=503 if down else 200)
