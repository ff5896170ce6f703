"""Second factor: clinic admins and superusers must have one (MFA_REQUIRED_FOR); after the
password alone they reach nothing but the verify (or enrolment) page; a TOTP code or a
recovery code (once) completes sign-in; every step is audited.
The same flow in a real browser: tests/e2e/test_mfa_journey.py."""

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests.fixtures.users import PASSWORD, enrol_totp, totp_code
from tests.portal.reviews_data import csrf_token

VERIFY = "/accounts/two-factor/"
SETUP = "/accounts/two-factor/setup/"


def password_login(username, client=None):
    client = client or Client(enforce_csrf_checks=True)
    token = csrf_token(client.get(reverse("login")))
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    return client


def submit_code(client, url, code, next_url=""):
    token = csrf_token(client.get(url))
    return client.post(url, {"code": code, "csrfmiddlewaretoken": token, "next": next_url})


def pages(case):
    return [
        reverse("cases:list"),
        reverse("cases:detail", kwargs={"case_id": case.pk}),
        reverse("reviews:queue"),
        reverse("reviews:agreement"),
        reverse("audit:events"),
        reverse("password_change"),
        reverse("mfa_recovery_codes"),
        reverse("admin:index"),
    ]


def wait_out_throttle(user):
    """As if the user waited: django-otp makes them wait 1, 2, 4... s after wrong codes."""
    from datetime import timedelta

    from django.utils import timezone
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user).update(throttling_failure_timestamp=timezone.now() - timedelta(hours=1))


def actions():
    from portal.audit.models import AuditEvent

    return list(AuditEvent.objects.order_by("at", "id").values_list("action", flat=True))


def test_admin_after_password_only_reaches_nothing_but_the_verify_page(carol, clinic_a, alice):
    from tests.portal.helpers import make_case

    case = make_case(clinic_a, alice)
    device = enrol_totp(carol)
    client = password_login("carol")
    for url in pages(case):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(VERIFY + "?next="), (url, response["Location"])
    assert client.post(reverse("cases:create"), {}).status_code == 302  # posts too
    assert client.get(SETUP)["Location"].startswith(VERIFY)  # no second device without the first

    response = submit_code(client, VERIFY, totp_code(device), next_url=reverse("audit:events"))
    assert response.status_code == 302 and response["Location"] == reverse("audit:events")
    for url in pages(case)[:-1]:  # not the Django admin: carol is not staff
        assert client.get(url).status_code == 200, url
    assert actions().count("mfa_verified") == 1


def test_a_wrong_code_is_refused_and_audited(carol, clinic_a):
    from portal.audit.models import AuditEvent

    device = enrol_totp(carol)
    client = password_login("carol")
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    response = submit_code(client, VERIFY, wrong)
    assert response.status_code == 200
    assert "That code did not work" in response.content.decode()
    assert client.get(reverse("cases:list"))["Location"].startswith(VERIFY)
    failed = AuditEvent.objects.get(action="mfa_failed")
    assert failed.actor == carol and failed.extra["kind"] == "app"
    # straight away even the right code waits: each wrong one doubles the delay
    response = submit_code(client, VERIFY, totp_code(device))
    assert "Too many wrong codes: wait" in response.content.decode()
    wait_out_throttle(carol)
    assert submit_code(client, VERIFY, totp_code(device)).status_code == 302


def test_admin_without_a_device_is_sent_to_enrolment_and_enrols(carol, clinic_a):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = password_login("carol")
    response = client.get(reverse("cases:list"))
    assert response["Location"].startswith(SETUP + "?next=")
    assert client.get(VERIFY)["Location"] == SETUP
    page = client.get(SETUP).content.decode()
    assert 'src="data:image/svg+xml;base64,' in page  # the QR code, made here, no external service
    device = TOTPDevice.objects.get(user=carol, confirmed=False)
    secret = re.search(r'<code id="mfa-secret">([A-Z2-7=]+)</code>', page).group(1)
    assert base64.b32decode(secret) == device.bin_key

    assert submit_code(client, SETUP, "000000" if totp_code(device) != "000000" else "111111").status_code == 200
    wait_out_throttle(carol)
    response = submit_code(client, SETUP, totp_code(device))
    assert response.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", response.content.decode())
    assert len(codes) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("cases:list")).status_code == 200
    assert actions()[-2:] == ["mfa_failed", "mfa_enrolled"]


def test_a_recovery_code_works_once(carol, clinic_a):
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from portal.audit.models import AuditEvent

    client = password_login("carol")
    client.get(SETUP)
    totp = TOTPDevice.objects.get(user=carol)
    response = submit_code(client, SETUP, totp_code(totp))
    code = re.findall(r"<li><code>([a-z2-7]+)</code></li>", response.content.decode())[3]
    client.post(reverse("logout"), {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})

    first = password_login("carol")
    response = submit_code(first, VERIFY, code.upper())  # as typed from paper
    assert response.status_code == 302 and response["Location"] == reverse("cases:list")
    assert first.get(reverse("cases:list")).status_code == 200
    used = AuditEvent.objects.get(action="mfa_recovery_used")
    assert used.actor == carol and used.extra["codes_left"] == 9
    assert not StaticToken.objects.filter(token=code).exists()

    second = password_login("carol")
    response = submit_code(second, VERIFY, code)
    assert response.status_code == 200 and "That code did not work" in response.content.decode()
    assert second.get(reverse("cases:list"))["Location"].startswith(VERIFY)


def test_mfa_is_optional_for_clinicians_by_default_and_required_with_all(alice, settings):
    client = password_login("alice")
    assert client.get(reverse("cases:list")).status_code == 200
    settings.MFA_REQUIRED_FOR = {"all"}
    assert client.get(reverse("cases:list"))["Location"].startswith(SETUP)


def test_a_clinician_who_enrolled_must_verify_too(alice):
    device = enrol_totp(alice)
    client = password_login("alice")
    assert client.get(reverse("cases:list"))["Location"].startswith(VERIFY)
    assert submit_code(client, VERIFY, totp_code(device)).status_code == 302
    assert client.get(reverse("cases:list")).status_code == 200


def test_superuser_must_verify_for_the_admin_site(root):
    device = enrol_totp(root)
    client = password_login("root")
    assert client.get(reverse("admin:index"))["Location"].startswith(VERIFY)
    submit_code(client, VERIFY, totp_code(device))
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_code_is_not_accepted_twice(alice):
    """The same TOTP code cannot be replayed for a second session."""
    device = enrol_totp(alice)
    code = totp_code(device)
    assert submit_code(password_login("alice"), VERIFY, code).status_code == 302
    assert submit_code(password_login("alice"), VERIFY, code).status_code == 200


@pytest.mark.parametrize("value", ["admins", "everyone,admin"])
def test_unknown_mfa_required_for_is_an_error(value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "MFA_REQUIRED_FOR": value}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "MFA_REQUIRED_FOR must list" in result.stderr


def test_totp_helper_matches_the_device():
    """Sanity of the test helper itself against RFC 6238's SHA-1 vector (59 s -> 94287082)."""
    from types import SimpleNamespace

    device = SimpleNamespace(bin_key=b"12345678901234567890", step=30, t0=0, digits=8, drift=0)
    assert totp_code(device, at=59) == "94287082"
    assert len(totp_code(SimpleNamespace(bin_key=b"x" * 20, step=30, t0=0, digits=6, drift=0), at=time.time())) == 6


def test_new_recovery_codes_replace_the_old_ones(carol, client_for):
    from django_otp.plugins.otp_static.models import StaticToken

    from portal.accounts.views import _new_recovery_codes

    old = _new_recovery_codes(carol)
    client = client_for(carol)
    url = reverse("mfa_recovery_codes")
    page = client.get(url)
    assert '<strong id="codes-left">10</strong>' in page.content.decode()
    response = client.post(url, {"csrfmiddlewaretoken": csrf_token(page)})
    new = re.findall(r"<li><code>([a-z2-7]+)</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert set(StaticToken.objects.filter(device__user=carol).values_list("token", flat=True)) == set(new)
