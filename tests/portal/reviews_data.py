"""Predictions made directly in the database for the review, export and audit tests
(no worker, no real model)."""

import hashlib
import itertools

from django.core.files.base import ContentFile

from tests.fixtures.images import make_image_bytes

_counter = itertools.count()


def model_version(architecture="vgg16", version="v1", active=True):
    from classifier.models import ModelVersion

    mv, _ = ModelVersion.objects.get_or_create(
        architecture=architecture,
        version=version,
        defaults={
            "artifact_path": f"{architecture}/{version}",
            "artifact_sha256": "0" * 64,
            "metadata": {"architecture": architecture},
            "threshold": 0.5,
            "is_active": False,
        },
    )
    if active and not mv.is_active:
        mv.activate()
    return mv


def case_with_scans(clinic, user, n, patient_ref=None):
    from portal.cases.models import Batch, Case, Scan

    case = Case.objects.create(
        clinic=clinic, patient_ref=patient_ref or f"P-{next(_counter):04d}", created_by=user
    )
    batch = Batch.objects.create(case=case, uploaded_by=user, files_received=n, accepted_count=n)
    scans = []
    for position in range(n):
        data = make_image_bytes(seed=next(_counter))
        scan = Scan(
            case=case,
            batch=batch,
            position=position,
            original_name=f"scan-{position}.jpg",
            status=Scan.Status.ACCEPTED,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            format="JPEG",
            width=64,  # make_image_bytes' default size
            height=64,
        )
        scan.file.save("upload.jpg", ContentFile(data), save=False)
        scan.save()
        scans.append(scan)
    return case, batch, scans


def predict(batch, scans, version, probabilities):
    """One Prediction per scan with the given P(tumor) values (None -> an error)."""
    from classifier.models import JobStatus, Prediction, PredictionJob

    job = PredictionJob.objects.create(
        batch=batch, model_version=version, total=len(scans), status=JobStatus.SUCCEEDED
    )
    predictions = []
    for scan, p in zip(scans, probabilities, strict=True):
        predictions.append(
            Prediction.objects.create(
                scan=scan,
                model_version=version,
                job=job,
                probability=p,
                label="" if p is None else ("tumor" if p >= version.threshold else "no_tumor"),
                threshold=version.threshold,
                error="model failed" if p is None else "",
            )
        )
    return predictions


def csrf_token(response):
    """The csrf token of a rendered form page."""
    import re

    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.content)
    assert match, "no csrf token in the page"
    return match.group(1).decode()
