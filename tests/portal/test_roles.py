"""Each role's allowed and refused actions on the review, audit, export and registry pages.

Clinic A: alice clinician, bob reviewer, carol admin. Clinic B: mallory clinician, plus
dave (reviewer) and erin (admin) made here, so that "another clinic" is tested with the
roles that could otherwise act. root is a superuser. Every client enforces CSRF.
"""

import pytest
from django.urls import reverse

from tests.portal.reviews_data import case_with_scans, csrf_token, model_version, predict

USERS = ["alice", "bob", "carol", "mallory", "dave", "erin", "root"]


@pytest.fixture
def world(clinic_a, clinic_b, alice, bob, carol, mallory, root):
    from tests.fixtures.users import _member

    dave = _member("dave", clinic_b, "reviewer")
    erin = _member("erin", clinic_b, "admin")
    case, batch, scans = case_with_scans(clinic_a, alice, 2)
    (p0, p1) = predict(batch, scans, model_version("vgg16", "v1"), [0.8, 0.3])
    users = {"alice": alice, "bob": bob, "carol": carol, "mallory": mallory, "dave": dave, "erin": erin, "root": root}
    return {"case": case, "p0": p0, "p1": p1, "clinic": clinic_a, "users": users}


def _url(world, name):
    p = world["p0"]
    return {
        "queue": reverse("reviews:queue"),
        "review": reverse("reviews:review", args=[p.public_id]),
        "image": reverse("cases:scan_image", kwargs={"scan_id": p.scan_id}),
        "history": reverse("reviews:case_history", args=[world["case"].pk]),
        "agreement": reverse("reviews:agreement"),
        "audit": reverse("audit:events"),
        "export_case": reverse("reviews:export_case", args=[world["case"].pk]),
        "export_clinic": reverse("reviews:export_clinic", args=[world["clinic"].pk]),
        "training": reverse("admin:classifier_trainingrun_start"),
        "registry_import": reverse("admin:classifier_modelversion_import"),
        "registry": reverse("admin:classifier_modelversion_changelist"),
    }[name]


# status for GET, per user in USERS order (302 = sent to the admin login page)
GET_MATRIX = {
    "queue":           [403, 200, 200, 403, 200, 200, 200],
    "review":          [403, 200, 200, 404, 404, 404, 200],
    "image":           [200, 200, 200, 404, 404, 404, 200],
    "history":         [200, 200, 200, 404, 404, 404, 200],
    "agreement":       [403, 403, 200, 403, 403, 200, 200],
    "audit":           [403, 403, 200, 403, 403, 200, 200],
    "export_case":     [200, 200, 200, 404, 404, 404, 200],
    "export_clinic":   [403, 403, 200, 404, 404, 404, 200],
    "training":        [302, 302, 302, 302, 302, 302, 200],
    "registry_import": [302, 302, 302, 302, 302, 302, 200],
    "registry":        [302, 302, 302, 302, 302, 302, 200],
}


@pytest.mark.parametrize("page", list(GET_MATRIX))
def test_get_matrix(client_for, world, page):
    url = _url(world, page)
    got = [client_for(world["users"][name]).get(url).status_code for name in USERS]
    assert dict(zip(USERS, got, strict=True)) == dict(zip(USERS, GET_MATRIX[page], strict=True))


def test_other_clinic_sees_nothing_of_clinic_a(client_for, world):
    dave, erin = world["users"]["dave"], world["users"]["erin"]
    assert list(client_for(dave).get(reverse("reviews:queue")).context["page"].object_list) == []
    assert client_for(erin).get(reverse("reviews:agreement"), {"clinic": world["clinic"].pk}).status_code == 404
    from classifier.models import Review

    Review.objects.create(prediction=world["p0"], scan=world["p0"].scan, reviewer=world["users"]["bob"],
                          verdict="confirmed", label="tumor")
    assert client_for(erin).get(reverse("reviews:agreement")).context["rows"] == []
    assert len(client_for(world["users"]["carol"]).get(reverse("reviews:agreement")).context["rows"]) == 1


# status of a review POST with a valid CSRF token
POST_MATRIX = {"alice": 403, "bob": 302, "carol": 302, "mallory": 404, "dave": 404, "erin": 404, "root": 302}


@pytest.mark.parametrize("name", USERS)
def test_review_post_matrix_with_csrf(client_for, world, name):
    from classifier.models import Review

    c = client_for(world["users"][name])
    token = csrf_token(c.get(reverse("cases:list")))  # any page with a form gives a token
    url = _url(world, "review")
    response = c.post(url, {"csrfmiddlewaretoken": token, "verdict": "confirmed"})
    assert response.status_code == POST_MATRIX[name]
    assert Review.objects.filter(prediction=world["p0"]).exists() == (POST_MATRIX[name] == 302)


@pytest.mark.parametrize("name", ["bob", "carol", "root"])
def test_review_post_without_csrf_token_is_refused(client_for, world, name):
    from classifier.models import Review

    c = client_for(world["users"][name])
    assert c.get(_url(world, "review")).status_code == 200
    response = c.post(_url(world, "review"), {"verdict": "confirmed"})
    assert response.status_code == 403
    assert not Review.objects.exists()


def test_admin_post_pages_refuse_clinic_admins_and_need_csrf(client_for, world, tmp_path):
    from classifier.models import ModelVersion, TrainingRun

    carol, root = world["users"]["carol"], world["users"]["root"]
    for url in (_url(world, "training"), _url(world, "registry_import")):
        c = client_for(carol)
        token = csrf_token(c.get(reverse("cases:list")))
        assert c.post(url, {"csrfmiddlewaretoken": token, "path": str(tmp_path)}).status_code == 302
        assert client_for(root).post(url, {"path": str(tmp_path), "architecture": "vgg16"}).status_code == 403
    assert not ModelVersion.objects.exclude(version="v1").exists() and not TrainingRun.objects.exists()
