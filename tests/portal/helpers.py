"""Helpers for portal tests: cases, uploads of generated files."""

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.fixtures.images import make_image_bytes


def make_case(clinic, user, ref="P-0001", **extra):
    from portal.cases.models import Case

    return Case.objects.create(clinic=clinic, patient_ref=ref, created_by=user, **extra)


def jpeg(name, seed=0, size=(64, 64), **kwargs):
    return SimpleUploadedFile(name, make_image_bytes(size=size, seed=seed, **kwargs), "image/jpeg")


def truncated_jpeg(name="truncated.jpg", seed=999):
    data = make_image_bytes(size=(64, 64), seed=seed)
    return SimpleUploadedFile(name, data[: len(data) // 2], "image/jpeg")


def text_as_jpeg(name="notes.jpg"):
    return SimpleUploadedFile(name, b"this is a text file, not an image\n" * 4, "image/jpeg")


def upload(client, case, files, models=("vgg16",), **extra):
    from django.urls import reverse

    csrf = _csrf(client, case)
    data = {"files": list(files), "models": list(models), "csrfmiddlewaretoken": csrf, **extra}
    return client.post(reverse("cases:upload", kwargs={"case_id": case.pk}), data)


def _csrf(client, case):
    from django.urls import reverse

    response = client.get(reverse("cases:detail", kwargs={"case_id": case.pk}))
    assert response.status_code == 200
    return response.cookies["csrftoken"].value if "csrftoken" in response.cookies else client.cookies["csrftoken"].value
