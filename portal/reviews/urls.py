from django.urls import path

from portal.reviews import exports, views

app_name = "reviews"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("predictions/<uuid:prediction_id>/", views.review, name="review"),
    path("cases/<uuid:case_id>/history/", views.case_history, name="case_history"),
    path("agreement/", views.agreement, name="agreement"),
    path("export/case/<uuid:case_id>.csv", exports.export_case, name="export_case"),
    path("export/clinic/<uuid:clinic_id>.csv", exports.export_clinic, name="export_clinic"),
]
