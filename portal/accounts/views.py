"""Sign-in pages: password login, second factor (enrol, verify, recovery codes), password reset.

Django's own auth views do the work; these subclasses add the known-device cookie that login
throttling reads, and audit events for the security-relevant steps.
"""

import base64
import io
import math
from base64 import b32encode
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import verify_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

from portal.accounts.forms import CodeForm
from portal.accounts.mfa import has_confirmed_device, second_factor_verified
from portal.accounts.reset_throttle import reset_allowed
from portal.accounts.throttle import clear_account_failures, remember_device
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.types import AuthenticatedRequest

RECOVERY_DEVICE_NAME = "Recovery codes"


class LoginView(auth_views.LoginView):
    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        remember_device(self.request, response, form.get_user().get_username())
        return response


def _next_url(request: HttpRequest) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure()):
        return url
    return reverse(settings.LOGIN_REDIRECT_URL)


def _new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with MFA_RECOVERY_CODES new single-use ones."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(settings.MFA_RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def _wait_seconds(devices: Iterable[Any]) -> int:
    """Seconds until one of ``devices`` accepts a code again (django-otp doubles the wait
    after each wrong code), or 0."""
    waits = []
    for device in devices:
        allowed, data = device.verify_is_allowed()
        if allowed:
            return 0
        until = (data or {}).get("locked_until")
        waits.append(max(1, math.ceil((until - timezone.now()).total_seconds())) if until else 1)
    return min(waits, default=0)


def _throttled_error(form: CodeForm, seconds: int) -> None:
    form.add_error("code", f"Too many wrong codes: wait {seconds} second{pluralize(seconds)} and try again.")


def _qr_data_uri(text: str) -> str:
    out = io.BytesIO()
    write_qrcode_image(text, out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_setup(request: AuthenticatedRequest) -> HttpResponse:
    """Enrol an authenticator app: scan the QR code (or type the key), confirm with a code.
    A user who already has one verified it to get here (SecondFactorMiddleware)."""
    user = request.user
    if has_confirmed_device(user):
        messages.info(request, "Two-factor sign-in is already set up for your account.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if wait := _wait_seconds([device]):
            _throttled_error(form, wait)
        elif form.is_app_code and device.verify_token(form.cleaned_data["code"]):
            with transaction.atomic():
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                TOTPDevice.objects.filter(user=user, confirmed=False).delete()
                codes = _new_recovery_codes(user)
            request.session.cycle_key()  # a new session id for the fully signed-in session
            otp_login(request, device)
            record(request, AuditEvent.Action.MFA_ENROLLED, device="totp")
            return render(
                request, "registration/mfa_recovery_codes.html", {"codes": codes, "next": _next_url(request)}
            )
        else:
            record(request, AuditEvent.Action.MFA_FAILED, step="enrolment")
            form.add_error("code", "That code did not match. Check the time on your phone and try the current code.")
    return render(
        request,
        "registration/mfa_setup.html",
        {
            "form": form,
            "qr_code": _qr_data_uri(device.config_url),
            "secret": b32encode(device.bin_key).decode("ascii"),
            "next": request.GET.get("next", ""),
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify(request: AuthenticatedRequest) -> HttpResponse:
    """The second step of signing in: a code from the app, or one recovery code."""
    user = request.user
    if second_factor_verified(user):
        return redirect(_next_url(request))
    if not has_confirmed_device(user):
        return redirect("mfa_setup")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        kind = TOTPDevice if form.is_app_code else StaticDevice
        candidates = list(kind.objects.filter(user=user, confirmed=True))
        wait = _wait_seconds(candidates)
        device = None
        if not wait:
            for candidate in candidates:
                device = verify_token(user, candidate.persistent_id, code)
                if device is not None:
                    break
        if wait:
            _throttled_error(form, wait)
        elif device is not None:
            request.session.cycle_key()  # a new session id for the fully signed-in session
            otp_login(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                record(request, AuditEvent.Action.MFA_RECOVERY_USED, codes_left=left)
                messages.warning(
                    request,
                    f"You signed in with a recovery code; {left} left. Each code works once.",
                )
            else:
                record(request, AuditEvent.Action.MFA_VERIFIED)
            return redirect(_next_url(request))
        else:
            record(request, AuditEvent.Action.MFA_FAILED, step="sign-in",
                   kind="app" if form.is_app_code else "recovery")
            form.add_error(
                "code",
                "That code did not work. Codes from the app change every 30 seconds; "
                "each recovery code works once. Each wrong code doubles the wait before the next try.",
            )
    return render(request, "registration/mfa_verify.html", {"form": form, "next": request.GET.get("next", "")})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def mfa_recovery_codes(request: AuthenticatedRequest) -> HttpResponse:
    """A verified user replaces their recovery codes (the old ones stop working)."""
    if not has_confirmed_device(request.user):
        return redirect("mfa_setup")
    if request.method == "POST":
        codes = _new_recovery_codes(request.user)
        record(request, AuditEvent.Action.MFA_ENROLLED, device="recovery codes")
        return render(request, "registration/mfa_recovery_codes.html",
                      {"codes": codes, "next": reverse_lazy(settings.LOGIN_REDIRECT_URL)})
    device = StaticDevice.objects.filter(user=request.user, name=RECOVERY_DEVICE_NAME).first()
    left = device.token_set.count() if device else 0
    return render(request, "registration/mfa_recovery_status.html", {"left": left})


class PasswordResetView(auth_views.PasswordResetView):
    """Always answers "sent if the address is known": the page never tells whether an
    address has an account, nor whether the rate limit (``reset_throttle``) held the mail back."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        email = form.cleaned_data["email"]
        users = list(form.get_users(email))
        allowed = reset_allowed(self.request, email, [user.pk for user in users])
        limited: dict[str, Any] = {} if allowed else {"rate_limited": True}  # no mail; the same answer
        for user in users:
            record(self.request, AuditEvent.Action.PASSWORD_RESET_REQUESTED, actor=user, **limited)
        if not users:
            record(self.request, AuditEvent.Action.PASSWORD_RESET_REQUESTED, actor=None, email=email[:254], **limited)
        if not allowed:
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        record(self.request, AuditEvent.Action.PASSWORD_RESET_DONE, actor=form.user)
        # The owner proved themselves through their e-mail: let them sign in again.
        clear_account_failures(form.user.get_username())
        return response
