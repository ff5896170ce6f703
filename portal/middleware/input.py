"""Requests refused before any view runs: bodies over the size limit and undecodable input."""

import unicodedata
from collections.abc import Callable, Mapping
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat


def _bad(text: str) -> bool:
    """NUL and other control characters (tab, newline and carriage return aside), or a
    replacement character left by bytes that were not UTF-8."""
    return any(
        ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r") for ch in text
    )


API_PREFIX = "/api/"  # portal/urls.py: the REST API answers in JSON, as DRF does


def _refuse(request: HttpRequest, status: int, detail: str, template: str,
            context: Mapping[str, object]) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": detail}, status=status)
    return render(request, template, context, status=status)


class RequestSizeLimitMiddleware:
    """413 for a request whose declared body exceeds MAX_REQUEST_BYTES, answered from the
    Content-Length header before a byte of the body is read or spooled to disk. (A body
    without Content-Length, chunked, is the front proxy's to limit: client_max_body_size.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MAX_REQUEST_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            sizes = {"limit": filesizeformat(limit).replace("\xa0", " "),
                     "size": filesizeformat(length).replace("\xa0", " ")}
            response = _refuse(request, 413, f"The request is {sizes['size']}; the limit is {sizes['limit']}.",
                               "413.html", sizes)
            response["Connection"] = "close"  # the unread body is not worth draining
            return response
        return self.get_response(request)


class RejectUndecodableInputMiddleware:
    """400 for a query string or form field that is not valid UTF-8 or holds NUL or other
    control characters: PostgreSQL refuses NUL in text, which would otherwise surface as a
    500 from whichever query used the value."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._undecodable(request):
            return _refuse(request, 400, "The request holds control characters or bytes that are not UTF-8.",
                           "400.html", {"undecodable": True})
        return self.get_response(request)

    @staticmethod
    def _undecodable(request: HttpRequest) -> bool:
        raw = unquote_to_bytes(request.META.get("QUERY_STRING", "").replace("+", " "))
        try:
            if _bad(raw.decode("utf-8")):
                return True
        except UnicodeDecodeError:
            return True
        # A form body is read here, before CSRF's check. A multipart one (up to MAX_REQUEST_MB,
        # spooled to disk) only for a signed-in user: an anonymous client is not made to cost
        # that before anything has checked it (API uploads authenticate later, by token, and
        # their fields are validated by the view's form).
        form = request.content_type == "application/x-www-form-urlencoded" or (
            request.content_type == "multipart/form-data" and request.user.is_authenticated
        )
        if request.method == "POST" and form:
            for key, values in request.POST.lists():
                if _bad(key) or any(_bad(value) for value in values):
                    return True
        return False
