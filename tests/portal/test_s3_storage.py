"""Private files in a real S3 server (SeaweedFS on loopback, credentials checked): the round
trip through django-storages, and images served as short-lived presigned redirects that the
S3 server itself refuses once tampered with or expired."""

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def test_storage_round_trip_through_django_storages_lands_in_the_private_bucket(s3_storage):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage, storages

    data = b"\x89PNG scan bytes " * 1000
    name = default_storage.save("scans/1/2/round-trip.png", ContentFile(data))
    assert type(default_storage._wrapped).__name__ == "S3Storage"
    assert default_storage.exists(name)
    with default_storage.open(name, "rb") as handle:
        assert handle.read() == data
    # It is really in the bucket (under media/), not on a local disk.
    stored = s3_storage.client().get_object(Bucket=s3_storage.bucket, Key=f"media/{name}")
    assert stored["Body"].read() == data
    # Model artifacts go to the same bucket under models/.
    storages["models"].save("vgg16/v1/metadata.json", ContentFile(b"{}"))
    assert s3_storage.client().get_object(Bucket=s3_storage.bucket, Key="models/vgg16/v1/metadata.json")
    # The bucket is private: an unsigned GET is refused.
    assert requests.get(f"{s3_storage.endpoint_url}/{s3_storage.bucket}/media/{name}", timeout=10).status_code == 403
    default_storage.delete(name)
    assert not default_storage.exists(name)


def test_a_wrong_secret_is_refused_by_the_s3_server(s3_server, settings):
    from botocore.exceptions import ClientError
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from portal.storage_config import build_storages

    settings.STORAGES = build_storages(
        media_root=settings.MEDIA_ROOT, model_root=settings.MODEL_ROOT, debug=False,
        s3=s3_server.settings_kwargs(secret_key="not-the-secret"),
    )
    with pytest.raises(ClientError) as refused:
        default_storage.save("scans/wrong-secret.png", ContentFile(b"x"))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as refused_read:
        s3_server.client(secret_key="not-the-secret").list_objects_v2(Bucket=s3_server.bucket)
    assert refused_read.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    keys = s3_server.client().list_objects_v2(Bucket=s3_server.bucket, Prefix="media/scans/wrong-secret")
    assert keys.get("KeyCount", 0) == 0


@pytest.fixture
def s3_scan(s3_storage, client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Scan

    case = make_case(clinic_a, alice)
    upload(client_for(alice), case, [jpeg("a.jpg", seed=11, size=(120, 90))])
    scan = Scan.objects.get(original_name="a.jpg")
    assert scan.file.name.startswith(f"scans/{clinic_a.pk}/")
    return scan


def test_scan_image_redirects_to_a_short_lived_presigned_url_after_the_check_and_audit(
    s3_scan, client_for, alice, mallory, settings
):
    from portal.audit.models import AuditEvent

    url = reverse("cases:scan_image", kwargs={"scan_id": s3_scan.pk})
    assert client_for(mallory).get(url).status_code == 404  # another clinic: no URL at all
    response = client_for(alice).get(url)
    assert response.status_code == 302
    assert {"private", "no-store"} <= _directives(response["Cache-Control"])
    assert AuditEvent.objects.filter(action="image_view", object_id=str(s3_scan.pk), actor=alice).exists()
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{s3_storage_endpoint(settings)}/")
    assert query["X-Amz-Expires"] == [str(settings.S3_URL_EXPIRE_SECONDS)]
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    with s3_scan.file.open("rb") as handle:
        assert fetched.content == handle.read()
    assert fetched.headers["Content-Type"] == "image/jpeg"
    assert fetched.headers["Cache-Control"] == "private, no-store"


def _directives(header):
    return {part.strip() for part in header.split(",")}


def s3_storage_endpoint(settings):
    return settings.S3_PUBLIC_ENDPOINT_URL


def test_a_tampered_or_expired_presigned_url_is_refused_by_the_s3_server(s3_scan, client_for, alice, settings):
    settings.S3_URL_EXPIRE_SECONDS = 1
    response = client_for(alice).get(reverse("cases:scan_image", kwargs={"scan_id": s3_scan.pk}))
    location = response["Location"]
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["1"]
    # Another object's key with this signature: refused.
    tampered = location.replace(s3_scan.file.name, s3_scan.file.name.replace(".jpg", "x.jpg"))
    assert tampered != location
    assert requests.get(tampered, timeout=10).status_code == 403
    # A forged signature: refused.
    signature = parse_qs(urlsplit(location).query)["X-Amz-Signature"][0]
    forged = location.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert requests.get(forged, timeout=10).status_code == 403
    time.sleep(2.2)
    expired = requests.get(location, timeout=10)
    assert expired.status_code == 403
    assert b"expired" in expired.content.lower()


def test_thumbnail_is_kept_in_the_bucket_and_then_redirected_to(s3_scan, client_for, alice, s3_storage):
    from portal.cases.views import thumbnail_name

    url = reverse("cases:scan_thumbnail", kwargs={"scan_id": s3_scan.pk})
    first = client_for(alice).get(url)
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg"
    key = f"media/{thumbnail_name(s3_scan)}"
    assert s3_storage.client().get_object(Bucket=s3_storage.bucket, Key=key)["Body"].read() == first.content
    second = client_for(alice).get(url)
    assert second.status_code == 302 and {"private", "no-store"} <= _directives(second["Cache-Control"])
    assert requests.get(second["Location"], timeout=10).content == first.content


def test_ensure_bucket_makes_the_bucket_once_and_checks_the_credentials(s3_server, settings):
    from django.core.management import CommandError, call_command

    from portal.storage_config import build_storages

    bucket = f"neuroai-init-{uuid.uuid4().hex[:8]}"
    kwargs = {**s3_server.settings_kwargs(), "bucket": bucket}
    settings.S3_BUCKET = bucket
    settings.STORAGES = build_storages(media_root=settings.MEDIA_ROOT, model_root=settings.MODEL_ROOT, debug=False,
                                       s3=kwargs)
    call_command("ensure_bucket")
    call_command("ensure_bucket")  # idempotent
    assert bucket in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    settings.STORAGES = build_storages(
        media_root=settings.MEDIA_ROOT, model_root=settings.MODEL_ROOT, debug=False,
        s3={**kwargs, "secret_key": "wrong"},
    )
    with pytest.raises(CommandError, match="not usable"):
        call_command("ensure_bucket")


def test_pages_allow_images_from_the_s3_origin_only_when_a_bucket_is_set():
    """Presigned redirects need the S3 origin in CSP img-src (and nothing wider)."""
    from tests.portal.test_settings import PRODUCTION_ENV, manage

    show = "from django.conf import settings; print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['img-src'])"
    local = manage("shell", "-c", show, **PRODUCTION_ENV)
    assert local.returncode == 0, local.stderr
    assert "s3" not in local.stdout
    bucket = manage(
        "shell", "-c", show, **PRODUCTION_ENV, S3_BUCKET="neuroai", S3_ENDPOINT_URL="http://s3:8333",
        S3_PUBLIC_ENDPOINT_URL="https://s3.clinic.example/",
    )
    assert bucket.returncode == 0, bucket.stderr
    assert "'https://s3.clinic.example'" in bucket.stdout and "s3:8333" not in bucket.stdout
