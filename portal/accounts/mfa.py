"""Who must use a second factor, and the middleware that holds a half-signed-in user back.

After the password, a user with a confirmed device must verify a code (TOTP or a recovery
code) before reaching anything; a user whom MFA_REQUIRED_FOR covers and who has no device
yet reaches only the enrolment page. Until then the only other pages open to them are
logging out and the static files.
"""

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device

from portal.accounts.models import Membership, Role
from portal.types import AnyUser


def mfa_required(user: User) -> bool:
    """Whether MFA_REQUIRED_FOR covers ``user``: all, superuser, staff, admin (clinic admins)."""
    wanted = settings.MFA_REQUIRED_FOR
    if "all" in wanted:
        return True
    if "superuser" in wanted and user.is_superuser:
        return True
    if "staff" in wanted and user.is_staff:
        return True
    if "admin" in wanted:
        return Membership.objects.filter(user=user, role=Role.ADMIN).exists()
    return False


def second_factor_verified(user: AnyUser) -> bool:
    """django-otp's ``user.is_verified()``: its OTPMiddleware sets ``user.otp_device`` to the
    device that verified this session, or None."""
    return getattr(user, "otp_device", None) is not None


def has_confirmed_device(user: AnyUser) -> bool:
    return user_has_device(user, confirmed=True)


class SecondFactorMiddleware:
    """Runs after django-otp's OTPMiddleware (which sets ``request.user.is_verified()``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not second_factor_verified(user) and not self._always_open(request):
            if has_confirmed_device(user):
                return self._to("mfa_verify", request)
            if mfa_required(user) and request.path != reverse("mfa_setup"):
                return self._to("mfa_setup", request)
        return self.get_response(request)

    @staticmethod
    def _always_open(request: HttpRequest) -> bool:
        path = request.path
        open_paths = (reverse("logout"), reverse("mfa_verify"), reverse("healthz"))
        return path in open_paths or path.startswith(settings.STATIC_URL)

    @staticmethod
    def _to(name: str, request: HttpRequest) -> HttpResponseRedirect:
        url = reverse(name)
        if request.method == "GET" and request.path != url:
            url += "?" + urlencode({"next": request.get_full_path()})
        return redirect(url)
