"""Audit events for logins, failed logins and lockouts; the events page; the read-only admin."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.fixtures.users import PASSWORD
from tests.portal.reviews_data import csrf_token


def _login(username, password, ip="10.0.0.1"):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)
    token = csrf_token(client.get(reverse("login")))
    response = client.post(
        reverse("login"),
        {"username": username, "password": password, "csrfmiddlewaretoken": token},
    )
    return client, response


def test_login_and_failed_login_are_audited(alice, clinic_a):
    from portal.audit.models import AuditEvent

    _, response = _login("alice", "wrong", ip="10.0.0.7")
    assert response.status_code == 200
    _, response = _login("alice", PASSWORD, ip="10.0.0.8")
    assert response.status_code == 302
    client, _ = _login("alice", PASSWORD, ip="10.0.0.9")
    client.post(reverse("logout"), {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    failed, ok, _, logout = AuditEvent.objects.order_by("at", "id")
    assert (logout.action, logout.actor, logout.ip_address) == ("logout", alice, "10.0.0.9")
    assert (failed.action, failed.actor, failed.actor_name, failed.ip_address, failed.clinic) == (
        "login_failed", None, "alice", "10.0.0.7", clinic_a)
    assert (ok.action, ok.actor, ok.ip_address, ok.clinic) == ("login", alice, "10.0.0.8", clinic_a)


@pytest.mark.parametrize("vary", ["nothing", "username"])
def test_repeated_failures_lock_out_and_the_lockout_is_audited(alice, bob, settings, vary):
    """After LOGIN_FAILURE_LIMIT failures (5 in tests) for one account from one address, or
    LOGIN_ADDRESS_FAILURE_LIMIT from one address for changing accounts, even the right
    password is refused with the lockout page, and the lockout is audited.
    (tests/portal/test_login_throttle.py covers who else stays able to sign in.)"""
    from portal.audit.models import AuditEvent

    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 7
    limit = settings.AXES_FAILURE_LIMIT if vary == "nothing" else settings.LOGIN_ADDRESS_FAILURE_LIMIT
    for attempt in range(limit):
        if vary == "nothing":
            _login("alice", "wrong", ip="10.0.1.1")
        else:
            _login(f"nobody{attempt}", "wrong", ip="10.0.2.1")
    if vary == "nothing":
        _, response = _login("alice", PASSWORD, ip="10.0.1.1")
    else:
        _, response = _login("bob", PASSWORD, ip="10.0.2.1")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert AuditEvent.objects.filter(action="login_failed").count() >= limit
    assert AuditEvent.objects.filter(action="login_locked").exists()
    assert not AuditEvent.objects.filter(action="login").exists()


def test_events_page_shows_own_clinic_events_with_filters(client_for, carol, alice, mallory, root, clinic_a, clinic_b):
    from portal.audit.log import record
    from portal.audit.models import AuditEvent

    _login("alice", PASSWORD)
    _login("mallory", PASSWORD)
    _login("alice", "wrong")
    record(None, AuditEvent.Action.EXPORT, actor=carol, clinic=clinic_a)
    record(None, AuditEvent.Action.EXPORT, actor=mallory, clinic=clinic_b)

    admin = client_for(carol)  # force_login: itself a "login" event, with no address
    page = admin.get(reverse("audit:events"))
    assert page.status_code == 200
    assert all(e.actor_name != "mallory" for e in page.context["page"].object_list)
    seen = [e for e in page.context["page"].object_list if e.ip_address or e.action == "export"]
    assert [(e.actor_name, e.action) for e in seen] == [
        ("carol", "export"), ("alice", "login_failed"), ("alice", "login")]
    assert seen[1].ip_address == "10.0.0.1"
    oldest = admin.get(reverse("audit:events"), {"order": "oldest"})
    assert [(e.actor_name, e.action) for e in oldest.context["page"].object_list] == [
        ("alice", "login"), ("alice", "login_failed"), ("carol", "export"), ("carol", "login")]
    only = admin.get(reverse("audit:events"), {"action": "login", "actor": "alice"})
    assert [e.action for e in only.context["page"].object_list] == ["login"]
    none = admin.get(reverse("audit:events"), {"date_to": "2000-01-01"})
    assert list(none.context["page"].object_list) == []

    everything = client_for(root).get(reverse("audit:events"))
    assert {e.actor_name for e in everything.context["page"].object_list} >= {"alice", "mallory", "carol"}


@pytest.mark.parametrize("who", ["alice", "bob", "mallory"])
def test_events_page_is_for_clinic_admins_only(client_for, who, request):
    user = request.getfixturevalue(who)
    assert client_for(user).get(reverse("audit:events")).status_code == 403


def test_audit_events_cannot_be_changed_or_deleted(client_for, root, carol, clinic_a):
    from portal.audit.log import record
    from portal.audit.models import AuditEvent

    event = record(None, AuditEvent.Action.EXPORT, actor=carol, clinic=clinic_a)
    c = client_for(root)
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    page = c.get(change)
    assert page.status_code == 200  # view only
    assert 'name="_save"' not in page.content.decode()
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else c.cookies["csrftoken"].value
    assert c.post(change, {"csrfmiddlewaretoken": token, "action": "logout"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert c.get(delete).status_code == 403
    assert c.post(delete, {"csrfmiddlewaretoken": token, "post": "yes"}).status_code == 403
    assert c.get(reverse("admin:audit_auditevent_add")).status_code == 403
    changelist = c.post(
        reverse("admin:audit_auditevent_changelist"),
        {"csrfmiddlewaretoken": token, "action": "delete_selected", "_selected_action": [event.pk]},
    )
    assert changelist.status_code in (200, 302)
    assert AuditEvent.objects.filter(pk=event.pk, action="export").exists()
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


def test_behind_proxies_the_client_address_comes_from_x_forwarded_for(alice, bob, settings):
    """With PROXY_COUNT trusted proxies, throttling and the audit trail use the client's
    address, not the proxy's: failures from one client do not lock out another one behind
    the same proxy, and a spoofed leftmost X-Forwarded-For entry is ignored."""
    from portal.audit.models import AuditEvent

    settings.AXES_IPWARE_PROXY_COUNT = 1

    def attempt(username, password, client_address):
        client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.9.9.9",
                        HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_address}")
        token = csrf_token(client.get(reverse("login")))
        return client.post(reverse("login"), {"username": username, "password": password,
                                              "csrfmiddlewaretoken": token})

    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt("alice", "wrong", "203.0.113.5")
    assert attempt("alice", PASSWORD, "203.0.113.5").status_code == 429  # that client is locked
    assert attempt("alice", PASSWORD, "203.0.113.77").status_code == 302  # another one is not
    assert set(AuditEvent.objects.filter(action="login_failed").values_list("ip_address", flat=True)) == {"203.0.113.5"}
    assert AuditEvent.objects.get(action="login").ip_address == "203.0.113.77"


def test_without_proxies_x_forwarded_for_is_ignored(alice):
    from portal.audit.models import AuditEvent

    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="6.6.6.6")
    token = csrf_token(client.get(reverse("login")))
    client.post(reverse("login"), {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert AuditEvent.objects.get(action="login").ip_address == "10.1.2.3"
