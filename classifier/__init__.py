"""The service around ml/: model versions, prediction jobs, predictions, reviews, tasks.

``classifier`` knows the portal's ``cases`` models by name and field: its foreign keys point
at ``cases.Scan`` and ``cases.Batch``, it reads ``Batch.scans_for_prediction()`` and the
accepted scans, filters by ``case__clinic`` and offers ``accounts.Clinic`` when training, and
its querysets get ``for_user`` from ``portal.accounts.models.ClinicScopedQuerySet``. There is
no pretend boundary (no swappable setting): ``cases`` and ``accounts`` models are part of its
data model. It imports nothing else of ``portal`` (never views, forms, access or audit code;
tests/test_layering.py holds the rule). What it does for the audit trail it announces through
``classifier.signals``. ``Review`` lives here because it is the label training reads; the
review workflow (queue, pages, forms, exports) is ``portal/reviews``.
"""
