"""The service around ml/: model versions, prediction jobs, predictions, reviews, tasks.

It refers to the portal's scans and batches only through the settings
CLASSIFIER_SCAN_MODEL and CLASSIFIER_BATCH_MODEL (as contrib.auth does with
AUTH_USER_MODEL) and never imports portal code. A batch model provides
``scans_for_prediction()``; a scan model provides ``file`` (a FieldFile).
"""
