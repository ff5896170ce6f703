from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api import tokens, views

app_name = "api"
urlpatterns = [
    path("v1/cases/", views.CaseList.as_view(), name="cases"),
    path("v1/cases/<uuid:case_id>/", views.CaseDetail.as_view(), name="case"),
    path("v1/cases/<uuid:case_id>/batches/", views.CaseBatches.as_view(), name="case_batches"),
    path("v1/batches/<uuid:batch_id>/", views.BatchDetail.as_view(), name="batch"),
    path("v1/batches/<uuid:batch_id>/predictions/", views.BatchPredictions.as_view(), name="batch_predictions"),
    path("v1/predictions/<uuid:prediction_id>/", views.PredictionDetail.as_view(), name="prediction"),
    path("v1/predictions/<uuid:prediction_id>/reviews/", views.PredictionReviews.as_view(), name="prediction_reviews"),
    path("v1/reviews/queue/", views.ReviewQueue.as_view(), name="review_queue"),
    path("v1/model-versions/", views.ModelVersionList.as_view(), name="model_versions"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: no inline script (CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]

token_urlpatterns = [
    path("", tokens.token_list, name="api_tokens"),
    path("<uuid:token_id>/revoke/", tokens.token_revoke, name="api_token_revoke"),
]
