"""Refused object accesses become audit events.

Views refuse by raising: ``Http404`` for an object of another clinic (or none at all; the
two answer alike on purpose) and ``PermissionDenied`` for a role check. Each refusal to a
signed-in user is recorded once with who, the method and the path. Which clinic the object
belongs to is deliberately not looked up or recorded: the trail must not become a way to
learn it. Query strings are not recorded either (they may carry search terms).
"""

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from portal.audit.log import record
from portal.audit.models import AuditEvent


class RefusedAccessAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, Http404):
            status = 404
        elif isinstance(exception, PermissionDenied):
            status = 403
        else:
            return None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            record(
                request, AuditEvent.Action.ACCESS_REFUSED,
                status=status, method=request.method, path=request.path[:500],
            )
        return None  # Django's own 404/403 handling answers
