"""Password rules: at least 12 characters, not common, not all digits, not like the user's
name or e-mail (Django's own validators)."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.fixtures.users import PASSWORD
from tests.portal.reviews_data import csrf_token


@pytest.mark.parametrize(
    "password, reason",
    [
        ("Summer2026", "at least 12 characters"),
        ("password1234", "too common"),
        ("839201746518", "entirely numeric"),
        ("alice@example.org", "too similar"),
    ],
)
def test_weak_passwords_are_refused(alice, password, reason):
    with pytest.raises(ValidationError) as error:
        validate_password(password, alice)
    assert reason in " ".join(error.value.messages)


def test_a_long_passphrase_is_accepted(alice):
    validate_password("tidal-orbit-lantern-91", alice)


def test_the_change_password_page_refuses_summer2026(client_for, alice):
    client = client_for(alice)
    url = reverse("password_change")
    token = csrf_token(client.get(url))
    response = client.post(url, {"old_password": PASSWORD, "new_password1": "Summer2026",
                                 "new_password2": "Summer2026", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert "at least 12 characters" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def _api_status(key):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/cases/").status_code


def test_a_new_password_revokes_the_users_api_tokens(client_for, alice, bob, root):
    """Whoever held the account could have made a token; a new password (change form, reset
    link or an administrator's password form) ends it, as it ends their other sessions."""
    from portal.api.models import ApiToken
    from portal.audit.models import AuditEvent

    key = ApiToken.issue(alice, "script")[1]
    bobs_key = ApiToken.issue(bob, "other user")[1]
    client = client_for(alice)
    url = reverse("password_change")
    client.post(url, {"old_password": PASSWORD, "new_password1": "tidal-orbit-lantern-91",
                      "new_password2": "tidal-orbit-lantern-91", "csrfmiddlewaretoken": csrf_token(client.get(url))})
    assert _api_status(key) == 401
    assert _api_status(bobs_key) == 200
    event = AuditEvent.objects.get(action="api_token_revoked")
    assert (event.actor, event.extra["reason"]) == (alice, "password changed")

    key = ApiToken.issue(alice, "new script")[1]  # a token made after the change works
    assert _api_status(key) == 200
    admin = client_for(root)
    url = reverse("admin:auth_user_password_change", args=[alice.pk])
    admin.post(url, {"password1": "amber-quarry-nimbus-42", "password2": "amber-quarry-nimbus-42",
                     "usable_password": "true", "csrfmiddlewaretoken": csrf_token(admin.get(url))})
    alice.refresh_from_db()
    assert alice.check_password("amber-quarry-nimbus-42")
    assert _api_status(key) == 401


def test_signing_in_keeps_the_api_tokens(alice):
    from django.test import Client

    from portal.api.models import ApiToken

    key = ApiToken.issue(alice, "script")[1]
    client = Client()
    client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert "_auth_user_id" in client.session
    assert _api_status(key) == 200
