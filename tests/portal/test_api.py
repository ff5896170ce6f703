"""REST API: token life cycle, uploads through the same intake as the page, predictions
as JSON, roles, throttling, schema and docs."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from tests.fixtures.dicom import make_mr_dicom, make_zip
from tests.fixtures.images import make_image_bytes
from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def api(key):
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


def csrf(client):
    client.get("/accounts/api-tokens/")
    return client.cookies["csrftoken"].value


@pytest.fixture
def alice_key(alice):
    from portal.api.models import ApiToken

    return ApiToken.issue(alice, "script")[1]


def test_token_life_cycle_create_use_revoke_expire(client_for, alice):
    from portal.api.models import ApiToken, hash_key

    page = client_for(alice)
    response = page.post("/accounts/api-tokens/",
                         {"name": "PACS bridge", "days": 30, "csrfmiddlewaretoken": csrf(page)})
    assert response.status_code == 200
    html = response.content.decode()
    token = ApiToken.objects.get(user=alice)
    key = html.split('id="new-key">')[1].split("<")[0]
    assert key.startswith("nai_") and token.key_hash == hash_key(key) and key not in str(token.__dict__)
    assert 29 <= (token.expires_at - timezone.now()).days <= 30
    assert key not in page.get("/accounts/api-tokens/").content.decode()  # shown once
    assert api(key).get("/api/v1/cases/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert api("nai_not-a-real-key").get("/api/v1/cases/").status_code == 401
    assert Client().get("/api/v1/cases/").status_code in (401, 403)
    assert page.post(f"/accounts/api-tokens/{token.pk}/revoke/", {"csrfmiddlewaretoken": csrf(page)}).status_code == 302
    assert api(key).get("/api/v1/cases/").status_code == 401
    from portal.audit.models import AuditEvent

    events = list(AuditEvent.objects.filter(object_id=str(token.pk)).values_list("action", flat=True))
    assert sorted(events) == ["api_token_created", "api_token_revoked"]
    other_token, other_key = ApiToken.issue(alice, "old")
    ApiToken.objects.filter(pk=other_token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api(other_key).get("/api/v1/cases/").status_code == 401


def test_only_the_owner_can_revoke_a_token(client_for, alice, mallory):
    from portal.api.models import ApiToken

    token, key = ApiToken.issue(alice, "script")
    other = client_for(mallory)
    revoke = other.post(f"/accounts/api-tokens/{token.pk}/revoke/", {"csrfmiddlewaretoken": csrf(other)})
    assert revoke.status_code == 404
    assert api(key).get("/api/v1/cases/").status_code == 200


def test_case_list_and_create_respect_clinics_and_roles(alice, alice_key, mallory, clinic_a, clinic_b, bob):
    make_case(clinic_b, mallory, ref="B-SECRET")
    client = api(alice_key)
    created = client.post("/api/v1/cases/", {"patient_ref": "P-API-1"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["clinic"] == str(clinic_a.pk)
    again = client.post("/api/v1/cases/", {"patient_ref": "p-api\u200b-1 "}, content_type="application/json")
    assert again.status_code == 400 and "already exists" in again.content.decode()
    elsewhere = client.post("/api/v1/cases/", {"patient_ref": "X", "clinic": str(clinic_b.pk)},
                            content_type="application/json")
    assert elsewhere.status_code == 400
    listed = client.get("/api/v1/cases/").json()
    assert [case["patient_ref"] for case in listed["results"]] == ["P-API-1"] and listed["count"] == 1
    found = client.get("/api/v1/cases/", {"patient_ref": "ｐ-ａｐｉ-１"}).json()  # full-width: the same reference
    assert [case["patient_ref"] for case in found["results"]] == ["P-API-1"]


def test_upload_of_20_files_gives_the_same_batch_as_the_page(client_for, alice, alice_key, clinic_a, vgg16_model):
    from portal.cases.models import Batch

    def files():
        made = [SimpleUploadedFile(f"scan-{i:02d}.jpg", make_image_bytes(size=(64, 64), seed=i)) for i in range(18)]
        made.append(SimpleUploadedFile("notes.jpg", b"not an image at all"))
        made.append(SimpleUploadedFile("again.jpg", make_image_bytes(size=(64, 64), seed=0)))
        return made

    page_case = make_case(clinic_a, alice, ref="P-PAGE")
    api_case = make_case(clinic_a, alice, ref="P-API")
    upload(client_for(alice), page_case, files())
    response = api(alice_key).post(f"/api/v1/cases/{api_case.pk}/batches/", {"files": files()})
    assert response.status_code == 201, response.content
    body = response.json()
    page_batch, api_batch = Batch.objects.get(case=page_case), Batch.objects.get(case=api_case)
    assert body["id"] == str(api_batch.pk) and response["Location"] == f"/api/v1/batches/{api_batch.pk}/"

    def shape(batch):
        scans = batch.scans.order_by("position")
        return (
            (batch.files_received, batch.accepted_count, batch.rejected_count, batch.duplicate_count),
            [(s.position, s.original_name, s.status, s.rejection_reason.split("“")[0], s.sha256) for s in scans],
            sorted(job.model_version_id for job in batch.prediction_jobs.all()),
        )

    assert shape(page_batch) == shape(api_batch)
    assert shape(api_batch)[0] == (20, 18, 1, 1)
    assert (body["accepted_count"], body["rejected_count"], body["duplicate_count"]) == (18, 1, 1)
    assert body["jobs"][0]["architecture"] == "vgg16" and body["finished"] is False
    progress = api(alice_key).get(f"/api/v1/batches/{api_batch.pk}/").json()
    assert progress["jobs"][0]["total"] == 18


def test_upload_limits_are_the_pages(alice, alice_key, clinic_a, vgg16_model, settings):
    case = make_case(clinic_a, alice)
    settings.UPLOAD_MAX_FILES = 2
    response = api(alice_key).post(
        f"/api/v1/cases/{case.pk}/batches/", {"files": [jpeg(f"{i}.jpg", seed=i) for i in range(3)]}
    )
    assert response.status_code == 400 and "one upload takes at most 2" in response.content.decode()


def test_dicom_series_by_api_and_predictions_back_as_json(alice, alice_key, clinic_a, vgg16_model):
    from classifier.models import Prediction

    case = make_case(clinic_a, alice)
    archive = make_zip([(f"IM{i}", make_mr_dicom(instance=i, seed=i)) for i in range(3)])
    client = api(alice_key)
    response = client.post(f"/api/v1/cases/{case.pk}/batches/", {"files": [SimpleUploadedFile("series.zip", archive)]})
    assert response.status_code == 201 and response.json()["accepted_count"] == 3
    scan = response.json()["scans"][0]
    assert scan["format"] == "DICOM" and scan["series_description"] == "T1 AX POST" and scan["plane"] == "axial"
    batch_id = response.json()["id"]
    job = case.batches.get().prediction_jobs.get()
    Prediction.objects.create(
        scan_id=scan["id"], model_version=vgg16_model, job=job, probability=0.91, label="tumor", threshold=0.5
    )
    body = client.get(f"/api/v1/batches/{batch_id}/predictions/").json()
    assert body["count"] == 1
    [row] = body["results"]
    assert row["probability"] == 0.91 and row["label"] == "tumor" and row["threshold"] == 0.5
    assert row["model_version"]["architecture"] == "vgg16" and row["scan"] == scan["id"]
    assert row["gate"] is None  # no gate verdict recorded for this one
    Prediction.objects.filter(scan_id=scan["id"]).update(assessed=False, ood_score=7.5, label="")
    [row] = client.get(f"/api/v1/batches/{batch_id}/predictions/").json()["results"]
    assert row["label"] == "" and row["assessed"] is False
    assert row["gate"]["ood_score"] == 7.5 and row["gate"]["reason"].startswith("Not assessed")
    mixed = make_zip([("a", make_mr_dicom(seed=7)), ("b", make_mr_dicom(seed=8, patient_id="OTHER"))])
    refused = client.post(f"/api/v1/cases/{case.pk}/batches/", {"files": [SimpleUploadedFile("mixed.zip", mixed)]})
    assert refused.status_code == 400 and "refused as a whole" in refused.json()["detail"]


def test_reviews_need_the_reviewer_role(alice, bob, alice_key, clinic_a, vgg16_model):
    from classifier.models import Prediction
    from portal.api.models import ApiToken

    case = make_case(clinic_a, alice)
    response = api(alice_key).post(f"/api/v1/cases/{case.pk}/batches/", {"files": [jpeg("a.jpg")]})
    batch = case.batches.get()
    prediction = Prediction.objects.create(
        scan=batch.scans.get(), model_version=vgg16_model, job=batch.prediction_jobs.get(),
        probability=0.2, label="no_tumor", threshold=0.5,
    )
    url = f"/api/v1/predictions/{prediction.public_id}/reviews/"
    assert response.status_code == 201
    assert api(alice_key).post(url, {"verdict": "confirmed"}, content_type="application/json").status_code == 403
    assert api(alice_key).get("/api/v1/reviews/queue/").status_code == 403
    bob_key = ApiToken.issue(bob, "reviews")[1]
    queue = api(bob_key).get("/api/v1/reviews/queue/").json()
    assert [row["id"] for row in queue["results"]] == [str(prediction.public_id)]
    made = api(bob_key).post(url, {"verdict": "corrected", "note": "enhancing lesion"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["label"] == "tumor"
    again = api(bob_key).post(url, {"verdict": "confirmed"}, content_type="application/json")
    assert again.status_code == 409
    assert api(bob_key).get("/api/v1/reviews/queue/").json()["count"] == 0


def test_throttling_answers_429(alice, alice_key, settings):
    settings.API_THROTTLE_USER = "3/minute"  # counted per user: this test's alice is new to the cache
    client = api(alice_key)
    codes = [client.get("/api/v1/model-versions/").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    assert "Retry-After" in client.get("/api/v1/model-versions/")


def test_an_unreachable_cache_lets_api_requests_through_with_a_warning(alice, alice_key, settings, caplog):
    """The throttle counters are in Redis: while it is away, results are still served."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    response = api(alice_key).get("/api/v1/model-versions/")
    assert response.status_code == 200
    assert "API throttle API_THROTTLE_USER not applied: the cache is unreachable" in caplog.text


SUBPROCESS_REQUESTS = """
import os
from django.test import Client
client = Client(HTTP_AUTHORIZATION="Token " + os.environ["THROTTLE_TEST_KEY"])
print([client.get("/api/v1/model-versions/").status_code for _ in range(2)])
"""


@pytest.mark.slow  # a second web process
def test_throttle_counts_are_shared_by_every_web_process(transactional_db, alice, alice_key, settings):
    """gunicorn serves the API from several processes: a process counting alone (a per-process
    cache) granted each client the whole rate again in every one of them."""
    import subprocess
    import sys

    from tests.fixtures.worker import BASE_DIR, worker_env

    settings.API_THROTTLE_USER = "3/minute"
    client = api(alice_key)
    assert [client.get("/api/v1/model-versions/").status_code for _ in range(2)] == [200, 200]
    # this test database and cache prefix; the key in the environment, not on a command line
    env = {**worker_env(), "API_THROTTLE_USER": "3/minute", "THROTTLE_TEST_KEY": alice_key}
    other = subprocess.run([sys.executable, "manage.py", "shell", "-c", SUBPROCESS_REQUESTS],
                           cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().splitlines()[-1] == "[200, 429]"  # the third request of the minute, then over


def test_schema_and_docs_are_served_without_outside_assets(client_for, alice):
    client = client_for(alice)
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/cases/{case_id}/batches/", "/api/v1/batches/{batch_id}/predictions/"} <= set(paths)
    assert "apiToken" in schema.json()["components"]["securitySchemes"]
    assert "patient_ref" in {p["name"] for p in paths["/api/v1/cases/"]["get"]["parameters"]}
    docs = client.get("/api/docs/").content.decode()
    assert "swagger" in docs.lower() and "cdn." not in docs and "unpkg" not in docs
    assert "<script>" not in docs  # the start-up script is a file of its own (CSP)
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_throttles_identify_a_client_as_the_audit_trail_does(rf, settings):
    """Not by the whole X-Forwarded-For header (DRF's default), which the client writes."""
    from portal.api.throttles import ApiAnonThrottle
    from portal.audit.ip import client_ip

    request = rf.get("/api/v1/cases/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert ApiAnonThrottle().get_ident(request) == client_ip(request) == "203.0.113.5"


def test_malformed_requests_get_a_400_not_a_server_error(alice, alice_key, clinic_a, vgg16_model):
    """Found by schemathesis: an upload without a body, a reference that NFKC lengthens past
    the column (U+FDFA is 18 letters), and JSON nested deeper than the parser can recurse."""
    from tests.portal.helpers import make_case

    case = make_case(clinic_a, alice)
    client = api(alice_key)
    response = client.generic("POST", f"/api/v1/cases/{case.pk}/batches/")  # no body, no form type
    assert response.status_code == 400 and "files" in response.json()
    response = client.post("/api/v1/cases/", {"patient_ref": "\ufdfa" * 4}, content_type="application/json")
    assert response.status_code == 400
    assert "it has 72 once normalised" in response.json()["patient_ref"][0]
    deep = "[" * 5000 + "]" * 5000
    response = client.post("/api/v1/cases/", deep, content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_refusals_before_the_view_answer_the_api_in_json(alice, alice_key, clinic_a, settings):
    """Control characters in the query string and a body over MAX_REQUEST_MB are refused before
    any view runs; an API client gets JSON for them, as for every other error, not an HTML page."""
    client = api(alice_key)
    response = client.get("/api/v1/cases/?patient_ref=%00x")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert "control characters" in response.json()["detail"]
    settings.MAX_REQUEST_BYTES = 1024
    response = client.post("/api/v1/cases/", {"patient_ref": "x" * 50}, content_type="application/json",
                           CONTENT_LENGTH="4096")
    assert response.status_code == 413 and "the limit is 1.0 KB" in response.json()["detail"]
    page = Client().get("/?q=%00")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


def test_a_case_is_made_of_text_of_bounded_length(alice, alice_key, clinic_a):
    client = api(alice_key)
    for body in ({"patient_ref": 123}, {"patient_ref": 1e300}, {"patient_ref": "P-N", "notes": 5}):
        response = client.post("/api/v1/cases/", body, content_type="application/json")
        assert response.status_code == 400 and "Not a valid string." in response.content.decode(), body
    response = client.post("/api/v1/cases/", {"patient_ref": "P-LONG", "notes": "x" * 5001},
                           content_type="application/json")
    assert response.status_code == 400 and "no more than 5000 characters" in response.content.decode()
    assert client.post("/api/v1/cases/", {"patient_ref": "P-OK", "notes": "x" * 5000},
                       content_type="application/json").status_code == 201
