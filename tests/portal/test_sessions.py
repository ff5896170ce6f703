"""Sessions end after SESSION_IDLE_MINUTES without activity, at SESSION_COOKIE_AGE after
sign-in however active, and with the browser (no persistent cookie). Time is moved by
rewriting the timestamps stored in the session, never by sleeping."""

import time

from django.test import Client
from django.urls import reverse

from tests.fixtures.users import PASSWORD
from tests.portal.reviews_data import csrf_token


def shift(client, **seconds_ago):
    session = client.session
    now = time.time()
    for key, ago in seconds_ago.items():
        session[key] = now - ago
    session.save()


def test_a_session_idle_longer_than_the_setting_is_signed_out(client_for, alice, settings):
    client = client_for(alice)
    assert client.get(reverse("cases:list")).status_code == 200
    shift(client, last_activity=settings.SESSION_IDLE_MINUTES * 60 + 5)
    response = client.get(reverse("cases:list"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login") + "?next=%2F"
    assert "_auth_user_id" not in client.session
    page = client.get(response["Location"]).content.decode()
    assert f"signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity" in page


def test_activity_within_the_idle_limit_keeps_the_session(client_for, alice, settings):
    client = client_for(alice)
    client.get(reverse("cases:list"))
    shift(client, last_activity=settings.SESSION_IDLE_MINUTES * 60 - 30)
    assert client.get(reverse("cases:list")).status_code == 200
    assert time.time() - client.session["last_activity"] < 60  # that visit restarted the clock


def test_background_requests_do_not_count_as_activity(client_for, alice, settings):
    """A page polling for progress (fetch: Sec-Fetch-Mode cors/same-origin) must not keep an
    unattended session open; navigations and form posts do."""
    client = client_for(alice)
    client.get(reverse("cases:list"))
    idle = settings.SESSION_IDLE_MINUTES * 60 - 90
    shift(client, last_activity=idle)
    assert client.get(reverse("cases:list"), headers={"Sec-Fetch-Mode": "cors"}).status_code == 200
    assert time.time() - client.session["last_activity"] >= idle - 5
    assert client.get(reverse("cases:list"), headers={"Sec-Fetch-Mode": "navigate"}).status_code == 200
    assert time.time() - client.session["last_activity"] < 60


def test_the_absolute_limit_holds_however_active_the_session(client_for, alice, settings):
    client = client_for(alice)
    client.get(reverse("cases:list"))
    shift(client, signed_in_at=settings.SESSION_COOKIE_AGE + 5, last_activity=10)
    response = client.get(reverse("cases:list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert "_auth_user_id" not in client.session


def test_the_session_cookie_ends_with_the_browser(alice):
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client.get(reverse("login")))
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token})
    cookie = response.cookies["sessionid"]
    assert cookie["expires"] == "" and cookie["max-age"] == ""
    assert cookie["httponly"]


def test_idle_sign_out_is_audited_as_a_logout(client_for, alice, settings):
    from portal.audit.models import AuditEvent

    client = client_for(alice)
    client.get(reverse("cases:list"))
    shift(client, last_activity=settings.SESSION_IDLE_MINUTES * 60 + 5)
    client.get(reverse("cases:list"))
    assert AuditEvent.objects.filter(action="logout", actor=alice).count() == 1
