"""Bad input and failures answer with a plain page and lose nothing: NUL bytes, look-alike
patient references, an unreachable database, an oversized request, a full disk."""

import io

import pytest
from django.test import Client
from django.urls import reverse

from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def _token(client, url):
    client.get(url)
    return client.cookies["csrftoken"].value


@pytest.mark.parametrize("query", ["q=%00", "q=abc%00def", "page=%ff%fe", "s=%01"])
def test_nul_and_undecodable_query_strings_get_a_400_page(client_for, alice, query):
    response = client_for(alice).get(f"/?{query}")
    assert response.status_code == 400
    assert 'id="undecodable"' in response.content.decode()


def test_a_nul_in_a_form_field_gets_a_400_and_creates_nothing(client_for, alice, clinic_a):
    from portal.cases.models import Case

    client = client_for(alice)
    url = reverse("cases:create")
    response = client.post(url, {"patient_ref": "P-1\x00", "clinic": clinic_a.pk,
                                 "csrfmiddlewaretoken": _token(client, url)})
    assert response.status_code == 400
    assert not Case.objects.exists()


@pytest.mark.parametrize("look_alike", ["dup123\u200b", "\u200bdup123", "DUP123", "ｄｕｐ１２３", " dup\u2060123 "])
def test_a_look_alike_patient_reference_reports_the_existing_case(client_for, alice, clinic_a, look_alike):
    from portal.cases.models import Case

    existing = make_case(clinic_a, alice, ref="dup123")
    client = client_for(alice)
    url = reverse("cases:create")
    response = client.post(url, {"patient_ref": look_alike, "clinic": clinic_a.pk,
                                 "csrfmiddlewaretoken": _token(client, url)})
    assert response.status_code == 200
    page = response.content.decode()
    assert "already exists" in page
    assert reverse("cases:detail", kwargs={"case_id": existing.pk}) in page
    assert Case.objects.count() == 1


def test_the_database_refuses_a_second_case_differing_only_in_letter_case(alice, clinic_a):
    from django.db import IntegrityError, transaction

    make_case(clinic_a, alice, ref="dup123")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_case(clinic_a, alice, ref="DUP123")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_case(clinic_a, alice, ref="dup\u200b123")  # normalised on save


def test_database_down_gives_a_friendly_503(django_db_setup, django_db_blocker):
    from django.db import connection

    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "a" * 32  # loading the session needs the database
    with django_db_blocker.unblock():
        saved = dict(connection.settings_dict)
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT="9")  # nothing listens there
        try:
            response = client.get("/")
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert 'id="service-unavailable"' in page and "try again" in page.lower()
    for internal in ("Traceback", "OperationalError", "psycopg", "5432", "Server Error (500)"):
        assert internal not in page


def test_other_server_errors_get_the_plain_500_page(rf):
    from portal.errors import server_error

    try:
        raise RuntimeError("secret internals")
    except RuntimeError:
        response = server_error(rf.get("/"))
    page = response.content.decode()
    assert response.status_code == 500 and 'id="server-error"' in page
    assert "secret internals" not in page and "RuntimeError" not in page


def test_a_request_over_the_size_limit_is_refused_before_its_body_is_read(client_for, alice, clinic_a, settings):
    from portal.cases.models import Scan

    settings.MAX_REQUEST_BYTES = 1024 * 1024
    case = make_case(clinic_a, alice)
    client = client_for(alice)
    url = reverse("cases:upload", kwargs={"case_id": case.pk})
    declared = client.post(url, {"csrfmiddlewaretoken": _token(client, reverse("cases:list"))},
                           CONTENT_LENGTH=str(200 * 1024 * 1024))  # what a 200 MB upload declares
    assert declared.status_code == 413
    assert 'id="request-too-large"' in declared.content.decode()
    big = upload(client, case, [jpeg("big.jpg", size=(1400, 1400), seed=i) for i in range(3)])
    assert big.status_code == 413
    assert not Scan.objects.exists()


def test_a_disk_full_write_leaves_no_partial_file_and_records_nothing(client_for, alice, clinic_a, vgg16_model,
                                                                     settings, tmp_path):
    from django.core.files.storage import default_storage

    from portal.cases.models import Batch, Scan

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.portal.storages.DiskFullStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    case = make_case(clinic_a, alice)
    response = upload(client_for(alice), case, [jpeg("a.jpg", seed=1, size=(200, 200))])
    assert response.status_code == 503
    assert "could not be stored" in response.content.decode()
    assert default_storage.partial, "the storage never wrote"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert not Scan.objects.exists() and not Batch.objects.exists()


def test_an_anonymous_multipart_body_is_not_read_before_the_csrf_check(alice, client_for):
    """Reading it first would let anyone make the server take in (and spool to disk) up to
    MAX_REQUEST_MB per request; a signed-in user's form is still checked for control characters."""
    anonymous = Client(enforce_csrf_checks=True)
    response = anonymous.post(reverse("login"), {"username": "a\x00", "file": io.BytesIO(b"x" * 1024)})
    assert response.status_code == 403  # CSRF refused it; the body was never parsed
    signed_in = client_for(alice)
    url = reverse("cases:create")
    response = signed_in.post(url, {"patient_ref": "P-1\x00", "csrfmiddlewaretoken": _token(signed_in, url),
                                    "file": io.BytesIO(b"x")})  # multipart, as the test client sends files
    assert response.status_code == 400
