"""The upload limits are raised deliberately (Django's default is 100 files) and tested."""

import pytest
from django.conf import settings
from django.urls import reverse

from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def test_django_file_limit_is_the_portal_limit():
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == settings.UPLOAD_MAX_FILES >= 300
    assert settings.UPLOAD_MAX_FILE_BYTES == 20 * 1024 * 1024  # default 20 MB


def test_a_batch_of_300_files_is_accepted_in_one_request(client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Batch

    case = make_case(clinic_a, alice)
    files = [jpeg(f"scan-{i:03d}.jpg", seed=i, size=(64, 64)) for i in range(300)]
    response = upload(client_for(alice), case, files)
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert batch.files_received == 300 and batch.accepted_count == 300
    assert batch.prediction_jobs.get().total == 300
    assert sorted(batch.scans.values_list("position", flat=True)) == list(range(1, 301))


def test_one_file_over_the_limit_is_refused_with_a_plain_message(client_for, alice, clinic_a, vgg16_model, settings):
    from portal.cases.models import Batch

    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 12
    case = make_case(clinic_a, alice)
    response = upload(client_for(alice), case, [jpeg(f"s{i}.jpg", seed=i, size=(64, 64)) for i in range(13)])
    assert response.status_code == 400
    text = response.content.decode()
    assert "at most 12 files" in text and "Nothing was stored" in text
    assert not Batch.objects.exists()
    # Exactly at the limit is fine.
    response = upload(client_for(alice), case, [jpeg(f"s{i}.jpg", seed=i, size=(64, 64)) for i in range(12)])
    assert response.status_code == 302 and Batch.objects.get().accepted_count == 12


def test_the_form_enforces_the_limit_too(client_for, alice, clinic_a, vgg16_model, settings):
    """If Django's own limit were set higher, the form still refuses the batch."""
    settings.UPLOAD_MAX_FILES = 3
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 100
    case = make_case(clinic_a, alice)
    response = upload(client_for(alice), case, [jpeg(f"s{i}.jpg", seed=i, size=(64, 64)) for i in range(4)])
    assert response.status_code == 400
    assert "one upload takes at most 3" in response.content.decode()


def test_case_page_tells_the_limits(client_for, alice, clinic_a, vgg16_model):
    case = make_case(clinic_a, alice)
    page = client_for(alice).get(reverse("cases:detail", kwargs={"case_id": case.pk})).content.decode()
    assert f'data-max-files="{settings.UPLOAD_MAX_FILES}"' in page
    assert "20 MB" in page


def test_other_bad_requests_get_the_plain_400_page(client, db):
    response = client.get("/", HTTP_HOST="evil.example")  # DisallowedHost
    assert response.status_code == 400
    assert "could not be understood" in response.content.decode()
