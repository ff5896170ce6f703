from django.contrib import admin
from django.urls import include, path

from portal.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("accounts/", include("portal.accounts.urls")),
    path("admin/", admin.site.urls),
    path("reviews/", include("portal.reviews.urls")),
    path("audit/", include("portal.audit.urls")),
    path("", include("portal.cases.urls")),
]
