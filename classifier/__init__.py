"""The service around ml/: model versions, prediction jobs, predictions, reviews, tasks.

It refers to the portal's scans, batches and clinics only through the settings
CLASSIFIER_SCAN_MODEL, CLASSIFIER_BATCH_MODEL and CLASSIFIER_CLINIC_MODEL (as contrib.auth
does with AUTH_USER_MODEL) and never imports portal code. A batch model provides
``scans_for_prediction()`` and ``clinic_id``; a scan model provides ``file`` (a FieldFile)
and the class method ``accepted_scans(clinic_ids=None)``. What the classifier does for
the audit trail it announces through ``classifier.signals``.
"""
