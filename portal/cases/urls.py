from django.urls import path

from portal.cases import views

app_name = "cases"
urlpatterns = [
    path("", views.case_list, name="list"),
    path("cases/new/", views.case_create, name="create"),
    path("cases/<uuid:case_id>/", views.case_detail, name="detail"),
    path("cases/<uuid:case_id>/report.pdf", views.case_report, name="report"),
    path("cases/<uuid:case_id>/upload/", views.case_upload, name="upload"),
    path("batches/<uuid:batch_id>/", views.batch_detail, name="batch"),
    path("batches/<uuid:batch_id>/progress/", views.batch_progress, name="batch_progress"),
    path("batches/<uuid:batch_id>/predict/", views.batch_predict, name="batch_predict"),
    path("batches/<uuid:batch_id>/rerun/", views.batch_rerun, name="batch_rerun"),
    path("jobs/<uuid:job_id>/", views.job_status, name="job"),
    path("scans/<uuid:scan_id>/", views.scan_detail, name="scan"),
    path("scans/<uuid:scan_id>/image/", views.scan_image, name="scan_image"),
    path("scans/<uuid:scan_id>/thumbnail/", views.scan_thumbnail, name="scan_thumbnail"),
    path("predictions/<uuid:prediction_id>/heatmap/", views.prediction_heatmap, name="heatmap"),
    path("predictions/<uuid:prediction_id>/explain/", views.heatmap_view, name="heatmap_view"),
]
