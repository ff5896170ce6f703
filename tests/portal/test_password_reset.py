"""Self-service password reset by e-mail (Django's own views): the link works once, the page
never reveals whether an address has an account, and both steps are audited."""

import re

from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.fixtures.users import PASSWORD
from tests.portal.reviews_data import csrf_token

NEW_PASSWORD = "quiet-harbour-violet-37"


def request_reset(email):
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client.get(reverse("password_reset")))
    response = client.post(reverse("password_reset"), {"email": email, "csrfmiddlewaretoken": token})
    return client, response


def login(username, password):
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client.get(reverse("login")))
    response = client.post(reverse("login"), {"username": username, "password": password, "csrfmiddlewaretoken": token})
    return response.status_code == 302 and "_auth_user_id" in client.session


def reset_by_mail(email, password):
    """Ask for the link, follow the one in the mail, set ``password``."""
    request_reset(email)
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/\S+/)", mail.outbox[-1].body).group(1)
    client = Client()
    page = client.get(link, follow=True)
    client.post(page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password})


def test_the_login_page_links_to_password_reset(db):
    page = Client().get(reverse("login")).content.decode()
    assert f'href="{reverse("password_reset")}"' in page


def test_reset_link_sets_a_new_password_and_works_once(alice):
    from portal.audit.models import AuditEvent

    _, response = request_reset("ALICE@example.org")
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.org"]
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/\S+/)", message.body).group(1)

    client = Client(enforce_csrf_checks=True)
    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"]
    set_url = form_page.redirect_chain[-1][0]
    response = client.post(set_url, {"new_password1": "Summer2026", "new_password2": "Summer2026",
                                      "csrfmiddlewaretoken": csrf_token(form_page)})
    assert "at least 12 characters" in response.content.decode()  # the same rules apply
    response = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD,
                                      "csrfmiddlewaretoken": csrf_token(form_page)})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_complete")
    assert login("alice", NEW_PASSWORD)
    assert not login("alice", PASSWORD)

    again = Client().get(link, follow=True)
    assert not again.context["validlink"]
    assert "has been used already or has expired" in again.content.decode()
    events = list(AuditEvent.objects.filter(action__startswith="password_reset").order_by("id"))
    assert [(e.action, e.actor) for e in events] == [
        ("password_reset_requested", alice), ("password_reset_done", alice)]


def test_an_unknown_address_gets_the_same_answer_and_no_mail(alice):
    from portal.audit.models import AuditEvent

    known_client, known = request_reset("alice@example.org")
    unknown_client, unknown = request_reset("nobody@example.org")
    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])
    assert known_client.get(known["Location"]).content == unknown_client.get(unknown["Location"]).content
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]
    event = AuditEvent.objects.get(action="password_reset_requested", actor__isnull=True)
    assert event.extra["email"] == "nobody@example.org"


def test_a_completed_reset_lifts_a_lock_out_of_that_account(alice, settings):
    """The owner proved themselves through their e-mail; the attacker's failures no longer
    keep them out."""
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("alice", "wrong")
    assert AccessAttempt.objects.filter(username="alice").exists()
    reset_by_mail("alice@example.org", NEW_PASSWORD)
    assert login("alice", NEW_PASSWORD)


def test_a_completed_reset_revokes_the_accounts_api_tokens(alice):
    from portal.api.models import ApiToken

    key = ApiToken.issue(alice, "made by whoever held the account")[1]
    reset_by_mail("alice@example.org", NEW_PASSWORD)
    assert login("alice", NEW_PASSWORD)
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/cases/").status_code == 401


def test_reset_mails_are_rate_limited_without_telling(alice, settings):
    """Nobody can flood a mailbox with reset links: past the limit the page answers as always,
    no mail goes out, and the audit trail says so. Other accounts are not held back, and a
    client past its own limit sends nothing for any address."""
    from portal.audit.models import AuditEvent

    settings.PASSWORD_RESET_MAILS_PER_HOUR = 3
    answers = {request_reset("alice@example.org")[1]["Location"] for _ in range(6)}
    assert answers == {reverse("password_reset_done")}
    assert len(mail.outbox) == 3
    events = AuditEvent.objects.filter(action="password_reset_requested", actor=alice)
    assert [bool(e.extra.get("rate_limited")) for e in events.order_by("id")] == [False] * 3 + [True] * 3

    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("dora", "dora@example.org", "tidal-orbit-lantern-91")
    request_reset("dora@example.org")
    assert len(mail.outbox) == 4  # another account still gets its mail

    settings.PASSWORD_RESET_REQUESTS_PER_HOUR = 1
    client = Client(REMOTE_ADDR="192.0.2.77")  # a client of its own: its count starts at 0
    for address in ("dora@example.org", "dora@example.org"):
        token = csrf_token(client.get(reverse("password_reset")))
        client.post(reverse("password_reset"), {"email": address, "csrfmiddlewaretoken": token})
    assert len(mail.outbox) == 5
