"""Clinic isolation: every URL of the app that takes an object id answers 404 to a user of
another clinic, and works for a member of the object's clinic.

The URLs are enumerated from the resolver, so a new view with an id is covered without
editing this test; a URL keyword this test does not know fails it until it is mapped.
"""

from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter, UUIDConverter

from tests.fixtures.users import login_verified
from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db

# Django admin: superusers only, checked by its own tests. Password reset links carry a
# signed token, not a clinic object (tests/portal/test_password_reset.py).
EXCLUDED_PREFIXES = ("admin/", "accounts/password/reset/")
# Ids of objects that belong to no clinic: model versions serve every clinic, so their cards
# are open to a member of any clinic (tests/portal/test_model_card.py checks the rest).
GLOBAL_KEYWORDS = {"version_id", "kind"}


@dataclass
class Route:
    name: str
    kwargs: dict  # keyword -> converter


def named_routes(excluded_prefixes):
    """Every named URL pattern whose route does not start with one of ``excluded_prefixes``;
    a pattern that takes an id must have a name (or no test could reach it)."""
    found = []

    def walk(patterns, prefix, namespaces, converters):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if route.startswith(excluded_prefixes):
                continue
            merged = {**converters, **getattr(entry.pattern, "converters", {})}
            if isinstance(entry, URLResolver):
                ns = namespaces + ([entry.namespace] if entry.namespace else [])
                walk(entry.url_patterns, route, ns, merged)
            elif isinstance(entry, URLPattern) and (entry.name or merged):
                assert entry.name, f"URL {route!r} takes {sorted(merged)} but has no name"
                found.append(Route(":".join([*namespaces, entry.name]), merged))

    walk(get_resolver().url_patterns, "", [], {})
    return found


def id_routes():
    """Every named URL pattern (outside the admin) with at least one converter."""
    return [route for route in named_routes(EXCLUDED_PREFIXES) if route.kwargs]


@pytest.fixture
def clinic_a_objects(client_for, alice, bob, carol, clinic_a, vgg16_model):
    """One of each object of clinic A, with a finished prediction and a review."""
    from classifier.models import Prediction, PredictionJob, Review
    from portal.cases.models import Batch

    case = make_case(clinic_a, alice)
    upload(client_for(alice), case, [jpeg("a.jpg", seed=1, size=(64, 64))])
    batch = Batch.objects.get(case=case)
    scan = batch.scans.get()
    job = PredictionJob.objects.get(batch=batch)
    prediction = Prediction.objects.create(
        scan=scan, model_version=vgg16_model, job=job, probability=0.8, label="tumor", threshold=0.5
    )
    review = Review.objects.create(
        prediction=prediction, scan=scan, reviewer=bob, verdict="confirmed", label="tumor"
    )
    from portal.api.models import ApiToken

    token, _ = ApiToken.issue(carol, "isolation")  # a token is its owner's alone
    return {
        "version_id": vgg16_model,
        "kind": "roc",
        "token_id": token,
        "case_id": case,
        "batch_id": batch,
        "scan_id": scan,
        "job_id": job,
        "prediction_id": prediction,
        "review_id": review,
        "clinic_id": clinic_a,
    }


def url_for(route, objects):
    kwargs = {}
    for keyword, converter in route.kwargs.items():
        if keyword not in objects:
            pytest.fail(
                f"URL {route.name} takes {keyword!r}, which the isolation test does not know: "
                "map it to a clinic-A object in clinic_a_objects."
            )
        obj = objects[keyword]
        if isinstance(obj, str):
            kwargs[keyword] = obj
        elif isinstance(converter, UUIDConverter):
            kwargs[keyword] = getattr(obj, "public_id", obj.pk)
        elif isinstance(converter, IntConverter):
            kwargs[keyword] = obj.pk
        else:
            pytest.fail(f"URL {route.name} takes {keyword!r} with an unexpected converter {converter!r}")
    return reverse(route.name, kwargs=kwargs)


def login(user):
    client = Client()  # CSRF is not the subject here: POST views must answer 404 too
    return login_verified(client, user)


def test_the_enumeration_sees_the_app(clinic_a_objects):
    names = {route.name for route in id_routes()}
    expected = {
        "cases:detail", "cases:upload", "cases:batch", "cases:batch_progress", "cases:batch_predict",
        "cases:job", "cases:scan", "cases:scan_image", "cases:scan_thumbnail", "cases:heatmap",
        "api:case", "api:case_batches", "api:batch", "api:batch_predictions", "api:prediction",
        "api:prediction_reviews", "api_token_revoke",
    }
    assert expected <= names, expected - names


def test_every_object_url_is_404_for_another_clinic_and_works_for_its_own(
    clinic_a_objects, carol, mallory
):
    owner, outsider = login(carol), login(mallory)  # carol: clinic A admin, every role
    checked = []
    for route in id_routes():
        if set(route.kwargs) <= GLOBAL_KEYWORDS:
            continue
        url = url_for(route, clinic_a_objects)
        response = owner.get(url)
        if response.status_code == 405:  # a POST-only view
            response = owner.post(url, {})
            assert response.status_code not in (403, 404, 405) and response.status_code < 500, (
                f"{route.name} POST {url}: clinic A admin got {response.status_code}"
            )
            denied = outsider.post(url, {})
        else:
            # 202: a heatmap the worker is still drawing; the object was found and allowed.
            assert response.status_code in (200, 202), f"{route.name} {url}: clinic A admin got {response.status_code}"
            denied = outsider.get(url)
        assert denied.status_code == 404, f"{route.name} {url}: clinic B user got {denied.status_code}"
        checked.append(route.name)
    assert len(checked) >= 10


def test_model_cards_are_open_to_every_clinic(clinic_a_objects, carol, mallory):
    url = reverse("model_card", kwargs={"version_id": clinic_a_objects["version_id"].pk})
    assert login(carol).get(url).status_code == 200
    assert login(mallory).get(url).status_code == 200


def test_every_object_url_needs_login(clinic_a_objects):
    anonymous = Client()
    for route in id_routes():
        url = url_for(route, clinic_a_objects)
        if route.name.startswith("api:"):  # the API answers 401 instead of a login redirect
            assert anonymous.get(url).status_code == 401, route.name
            assert anonymous.post(url, {}).status_code == 401, route.name
            continue
        response = anonymous.get(url)
        assert response.status_code in (302, 405), f"{route.name}: anonymous got {response.status_code}"
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/")
        response = anonymous.post(url, {})
        assert response.status_code in (302, 405), f"{route.name}: anonymous POST got {response.status_code}"


def test_lists_show_only_the_users_clinics(client_for, clinic_a_objects, clinic_b, mallory, alice):
    make_case(clinic_b, mallory, ref="B-SECRET")
    page_a = client_for(alice).get(reverse("cases:list")).content.decode()
    page_b = client_for(mallory).get(reverse("cases:list")).content.decode()
    assert "P-0001" in page_a and "B-SECRET" not in page_a
    assert "B-SECRET" in page_b and "P-0001" not in page_b


def test_superuser_sees_every_clinic(client_for, clinic_a_objects, root):
    case = clinic_a_objects["case_id"]
    assert client_for(root).get(reverse("cases:detail", kwargs={"case_id": case.pk})).status_code == 200
