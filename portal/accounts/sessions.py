"""Session limits: signed out after SESSION_IDLE_MINUTES without activity, and at the latest
SESSION_COOKIE_AGE seconds after signing in, however active the session was.

Last activity and the start of the session are kept in the session itself. Requests the
browser marks as made in the background (Sec-Fetch-Mode other than "navigate" on a GET:
progress polls, images) are not activity, so that a page left open does not keep a
session alive; form posts and page loads are. The stored time is written at most once a
minute, not on every request.
"""

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse

LAST_ACTIVITY_KEY = "last_activity"
STARTED_KEY = "signed_in_at"
_WRITE_EVERY_SECONDS = 60


def _is_activity(request: HttpRequest) -> bool:
    mode = request.headers.get("Sec-Fetch-Mode")
    return request.method != "GET" or mode is None or mode == "navigate"


class SessionLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            session = request.session
            started = session.setdefault(STARTED_KEY, now)
            last = session.get(LAST_ACTIVITY_KEY, now)
            idle = settings.SESSION_IDLE_MINUTES
            if now - last > idle * 60:
                return self._sign_out(request, f"You were signed out after {idle} minutes without activity.")
            if now - started > settings.SESSION_COOKIE_AGE:
                return self._sign_out(request, "Your session reached its time limit; please sign in again.")
            stale = LAST_ACTIVITY_KEY not in session or now - last >= _WRITE_EVERY_SECONDS
            if stale and _is_activity(request):
                session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)

    @staticmethod
    def _sign_out(request: HttpRequest, message: str) -> HttpResponseRedirect:
        next_url = request.get_full_path() if request.method == "GET" else None
        logout(request)
        messages.info(request, message)
        url = reverse(settings.LOGIN_URL)
        if next_url:
            url += "?" + urlencode({"next": next_url})
        return redirect(url)
