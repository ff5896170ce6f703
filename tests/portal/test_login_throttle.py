"""Login lock-out: counted per (account, address), so one person's failures behind a shared
address lock nobody else out; one address trying many accounts, and one account tried from
many addresses, are stopped at their own (higher) limits; a browser that signed in to an
account before still gets in while that account is under attack from elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from tests.fixtures.users import PASSWORD, _member
from tests.portal.reviews_data import csrf_token

BASE_DIR = Path(__file__).resolve().parents[2]
SHARED = "192.0.2.10"  # one clinic's NAT address


def attempt(username, password, ip, client=None):
    client = client or Client(enforce_csrf_checks=True)
    client.defaults["REMOTE_ADDR"] = ip
    token = csrf_token(client.get(reverse("login")))
    response = client.post(
        reverse("login"), {"username": username, "password": password, "csrfmiddlewaretoken": token}
    )
    return response, client


def signed_in(response, client):
    return response.status_code == 302 and "_auth_user_id" in client.session


def test_five_failures_for_one_account_do_not_lock_out_others_at_the_same_address(
    alice, bob, carol, mallory, clinic_a, settings
):
    dave = _member("dave", clinic_a, "clinician")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response, _ = attempt("alice", "wrong", SHARED)
        assert response.status_code in (200, 429)
    for user in (bob, carol, mallory, dave):
        response, client = attempt(user.username, PASSWORD, SHARED)
        assert signed_in(response, client), f"{user.username} was locked out by alice's failures"


def test_a_brute_force_on_one_account_from_one_address_is_stopped(alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt("alice", "wrong", "198.51.100.7")
    response, client = attempt("alice", PASSWORD, "198.51.100.7")  # even the right password
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_brute_force_spread_over_addresses_stops_new_devices_but_not_a_known_one(alice, settings):
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 8
    response, known = attempt("alice", PASSWORD, "203.0.113.1")  # alice's usual browser
    assert signed_in(response, known)
    known.post(reverse("logout"), {"csrfmiddlewaretoken": known.cookies["csrftoken"].value})

    for n in range(settings.LOGIN_ACCOUNT_FAILURE_LIMIT):  # below the per-address limit each
        attempt("alice", "wrong", f"198.51.100.{n + 1}")
    response, stranger = attempt("alice", PASSWORD, "198.51.100.200")
    assert response.status_code == 429, "a new browser must not get in during the attack"
    assert "_auth_user_id" not in stranger.session

    response, known = attempt("alice", PASSWORD, "203.0.113.2", client=known)  # travelled, new address
    assert signed_in(response, known)


def test_one_address_trying_many_accounts_is_stopped_at_the_address_limit(bob, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 12
    for n in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT - 1):
        attempt(f"nobody{n}", "wrong", SHARED)
    response, client = attempt("bob", PASSWORD, SHARED)
    assert signed_in(response, client), "below the address limit the address is open"
    attempt("nobody-last", "wrong", SHARED)
    response, client = attempt("bob", PASSWORD, SHARED)
    assert response.status_code == 429
    response, client = attempt("bob", PASSWORD, "192.0.2.99")
    assert signed_in(response, client), "the address, not the account, is locked"


def test_a_successful_login_does_not_clear_other_accounts_failures_from_that_address(alice, bob, settings):
    """Otherwise an attacker with an account of their own could reset the counter at will."""
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt("alice", "wrong", SHARED)
    response, client = attempt("bob", PASSWORD, SHARED)
    assert signed_in(response, client)
    attempt("alice", "wrong", SHARED)
    response, _ = attempt("alice", PASSWORD, SHARED)
    assert response.status_code == 429


def _compose_environment(service):
    from tests.portal.test_docker_compose import COMPOSE_ENV

    env = {**COMPOSE_ENV, "ALLOWED_HOSTS": "neuroai.example.org"}
    result = subprocess.run(
        ["docker-compose", "-f", str(BASE_DIR / "docker-compose.yml"), "config"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"][service]["environment"]


@pytest.mark.parametrize("service", ["web", "worker", "beat", "migrate"])
def test_compose_passes_the_proxy_count_to_every_container(service):
    assert _compose_environment(service)["PROXY_COUNT"] == "1"


def test_settings_read_the_client_address_the_way_compose_configures_them():
    """The web container's own environment, as docker-compose resolves it: the client is the
    entry the TLS proxy appended to X-Forwarded-For, not the proxy and not a spoofed entry."""
    compose = _compose_environment("web")
    env = {k: v for k, v in os.environ.items() if k not in compose}
    env.update({k: str(v) for k, v in compose.items()})
    env.update(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15",
        NEUROAI_DATA_DIR=os.environ["NEUROAI_DATA_DIR"],
        MEDIA_ROOT=os.path.join(os.environ["NEUROAI_DATA_DIR"], "media"),
        MODEL_ROOT=os.path.join(os.environ["NEUROAI_DATA_DIR"], "models"),
    )
    code = (
        "from django.test import RequestFactory; from portal.audit.ip import client_ip; "
        "r = RequestFactory().get('/', REMOTE_ADDR='172.18.0.5', HTTP_X_FORWARDED_FOR='6.6.6.6, 203.0.113.9'); "
        "print(client_ip(r))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "203.0.113.9"
