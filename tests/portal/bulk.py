"""Large cases made with bulk inserts (rows only, no stored files) for the paging tests."""

import hashlib
from datetime import timedelta

from django.utils import timezone


def big_case(clinic, user, *, scans, versions, batches=1, reviewer=None, reviewed=0, ref="P-BIG"):
    """A case with ``scans`` accepted scans spread over ``batches`` uploads, a prediction per
    scan and model version, and a review of the first ``reviewed`` predictions."""
    from classifier.models import JobStatus, Prediction, PredictionJob, Review
    from portal.cases.models import Batch, Case, Scan

    now = timezone.now()
    case = Case.objects.create(clinic=clinic, patient_ref=ref, created_by=user)
    batch_rows = Batch.objects.bulk_create(
        Batch(case=case, uploaded_by=user, created_at=now - timedelta(minutes=batches - i),
              files_received=scans // batches, accepted_count=scans // batches)
        for i in range(batches)
    )
    scan_rows = Scan.objects.bulk_create(
        Scan(case=case, batch=batch_rows[i % batches], position=i, original_name=f"scan-{i:05d}.jpg",
             status=Scan.Status.ACCEPTED, sha256=hashlib.sha256(f"{ref}-{i}".encode()).hexdigest(),
             file=f"scans/{clinic.pk}/{case.pk}/{i}.jpg", format="JPEG", size_bytes=1,
             created_at=now - timedelta(seconds=scans - i))
        for i in range(scans)
    )
    jobs = {
        (batch.pk, version.pk): job
        for batch in batch_rows for version in versions
        for job in [PredictionJob.objects.create(batch=batch, model_version=version, status=JobStatus.SUCCEEDED)]
    }
    predictions = Prediction.objects.bulk_create(
        Prediction(scan=scan, model_version=version, job=jobs[(scan.batch_id, version.pk)],
                   probability=(i % 97) / 97, label="tumor" if (i % 97) / 97 >= 0.5 else "no_tumor",
                   threshold=0.5, created_at=scan.created_at)
        for i, scan in enumerate(scan_rows) for version in versions
    )
    if reviewed:
        Review.objects.bulk_create(
            Review(prediction=p, scan=p.scan, reviewer=reviewer, verdict="confirmed", label=p.label)
            for p in predictions[:reviewed]
        )
    return case
