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
