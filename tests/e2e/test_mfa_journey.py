"""Two-factor sign-in in a real browser: a clinic admin without a device is sent to enrolment
after the password, scans nothing but reads the key from the page (as an authenticator app
would from the QR code), confirms with a code, gets recovery codes; at the next sign-in
every page leads to the verify page until a current TOTP code is entered; a recovery code
works once."""

import base64
import re
import time

import pytest

from tests.fixtures.users import PASSWORD, totp_code

pytestmark = pytest.mark.browser


def _password(page, username):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def _log_out(page):
    page.click("header form button:has-text('Log out')")
    page.wait_for_url(re.compile(r"/accounts/login/"))


def test_clinic_admin_enrols_then_must_verify_each_sign_in(transactional_db, live_server, page, carol, clinic_a):
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from playwright.sync_api import expect

    from portal.audit.models import AuditEvent

    # Password only: straight to enrolment, and nothing else is reachable.
    _password(page, "carol")
    page.wait_for_url(re.compile(r"/accounts/two-factor/setup/"))
    expect(page.locator("h1")).to_have_text("Set up two-factor sign-in")
    page.goto("/audit/")
    assert "/accounts/two-factor/setup/" in page.url
    assert page.evaluate("document.getElementById('mfa-qr').naturalWidth") > 0  # the QR code renders
    secret = page.inner_text("#mfa-secret").strip()
    device = TOTPDevice.objects.get(user=carol, confirmed=False)
    assert base64.b32decode(secret) == device.bin_key  # the app would hold this key
    page.fill("input[name=code]", totp_code(device))
    page.click("#mfa-setup-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    page.click("#mfa-continue")
    page.wait_for_url(re.compile(r"/audit/$"))  # where she was going
    expect(page.locator("h1")).to_contain_text("Audit")
    _log_out(page)

    # Next sign-in: every page leads to the verify page until a valid code is entered.
    _password(page, "carol")
    page.wait_for_url(re.compile(r"/accounts/two-factor/\?next="))
    for path in ("/", "/audit/", "/reviews/agreement/", "/accounts/password/"):
        page.goto(path)
        assert "/accounts/two-factor/?next=" in page.url, path
    device.refresh_from_db()
    page.fill("input[name=code]", totp_code(device, at=time.time() + device.step))  # the next code
    page.click("#mfa-verify-form button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/password/$"))
    page.goto("/audit/")
    expect(page.locator("h1")).to_contain_text("Audit")
    _log_out(page)

    # A recovery code works once.
    _password(page, "carol")
    page.wait_for_url(re.compile(r"/accounts/two-factor/"))
    page.fill("input[name=code]", codes[0])
    page.click("#mfa-verify-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("recovery code; 9 left")
    _log_out(page)
    _password(page, "carol")
    page.wait_for_url(re.compile(r"/accounts/two-factor/"))
    page.fill("input[name=code]", codes[0])
    page.click("#mfa-verify-form button[type=submit]")
    expect(page.locator(".errorlist")).to_contain_text("That code did not work")
    page.goto("/")
    assert "/accounts/two-factor/" in page.url

    actions = list(AuditEvent.objects.filter(actor=carol).order_by("at", "id").values_list("action", flat=True))
    security = [a for a in actions if a.startswith(("mfa_", "login", "logout"))]
    assert security == [
        "login", "mfa_enrolled", "logout",
        "login", "mfa_verified", "logout",
        "login", "mfa_recovery_used", "logout",
        "login", "mfa_failed",
    ]
