"""Error pages: plain words, no stack, no internals (handler500)."""

import sys
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader

DATABASE_DOWN = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30


def _page(template: str, status: int) -> HttpResponse:
    # Rendered without the request: its context processors would query the database,
    # which may be the very thing that failed.
    try:
        body = loader.get_template(template).render()
    except Exception:  # a broken template must not turn an error page into another error
        body = "<!doctype html><title>Server error</title><h1>Something went wrong</h1>"
    return HttpResponse(body, status=status)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Django calls this for any uncaught exception, in a view or in a middleware. An
    unreachable database answers 503 with Retry-After (the service is down for a while,
    nothing is lost); anything else answers the plain 500 page."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_DOWN):
        response = _page("503.html", 503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    else:
        response = _page("500.html", 500)
    response["Cache-Control"] = "no-store"
    return response
