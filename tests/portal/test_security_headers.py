"""Every page carries a Content-Security-Policy without inline script or style, and every
page shown to a signed-in user (patient data) is marked no-store. The URLs come from the
resolver, as in test_isolation, so a new page is covered without editing this test."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.portal.test_isolation import clinic_a_objects, url_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

# admin: Django's own pages; healthz: no patient data, 503 without a worker; password reset
# links: a signed token for signed-out users (the login page's CSP is checked below).
EXCLUDED_PREFIXES = ("admin/", "healthz", "accounts/password/reset/")


def all_routes():
    from tests.portal.test_isolation import named_routes

    return named_routes(EXCLUDED_PREFIXES)


def _directives(response):
    header = response.get("Content-Security-Policy", "")
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def _cache_control(response):
    return {part.strip() for part in response.get("Cache-Control", "").split(",")}


def test_every_page_for_a_signed_in_user_has_csp_and_no_store(client_for, carol, clinic_a_objects):  # noqa: F811 (fixture)
    client = client_for(carol)  # clinic A admin: sees every page of clinic A
    checked = []
    for route in all_routes():
        url = url_for(route, clinic_a_objects) if route.kwargs else reverse(route.name)
        response = client.get(url)
        assert response.status_code < 500, f"{route.name} {url}: {response.status_code}"
        csp = _directives(response)
        assert csp.get("default-src") == ["'self'"], f"{route.name}: CSP {csp}"
        assert csp.get("script-src") == ["'self'"] and csp.get("style-src") == ["'self'"], route.name
        assert csp.get("object-src") == ["'none'"] and csp.get("frame-ancestors") == ["'none'"], route.name
        assert {"no-store", "private"} <= _cache_control(response), f"{route.name}: {response.get('Cache-Control')}"
        assert response["Referrer-Policy"] == "same-origin", route.name
        assert "camera=()" in response["Permissions-Policy"], route.name
        checked.append(route.name)
    assert {"cases:list", "cases:detail", "cases:scan", "cases:batch", "cases:scan_image",
            "reviews:queue", "audit:events"} <= set(checked)


def test_the_login_page_has_csp_too(client):
    response = client.get(reverse("login"))
    assert _directives(response).get("script-src") == ["'self'"]


def test_no_template_has_inline_script_or_style():
    offenders = []
    for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        text = path.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"<style\b", r"\sstyle=", r"\son[a-z]+=", r"javascript:"):
            if re.search(pattern, text, flags=re.IGNORECASE):
                offenders.append(f"{path.relative_to(settings.BASE_DIR)}: {pattern}")
    assert not offenders, offenders
