"""Response headers that keep patient data out of caches and browser features off.

Content-Security-Policy is django-csp's (settings.CONTENT_SECURITY_POLICY); Referrer-Policy
is Django's SecurityMiddleware (SECURE_REFERRER_POLICY)."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class NoStoreForSignedInMiddleware:
    """Every response to a signed-in user may carry patient data (case lists, file names,
    images, predictions), so none of them may be kept by the browser's or a proxy's cache:
    ``Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private``. Static
    files never reach this (WhiteNoise answers them first)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response


class PermissionsPolicyMiddleware:
    """No camera, microphone, location, payment or other powerful feature for any page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.value = settings.PERMISSIONS_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.value:
            response.headers.setdefault("Permissions-Policy", self.value)
        return response
