from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

from portal.api.urls import token_urlpatterns
from portal.health import views as health
from portal.metrics import metrics
from portal.notifications.views import preferences

urlpatterns = [
    path("healthz", health.ready, name="healthz"),
    path("healthz/live", health.live, name="healthz_live"),
    # Browsers and admin pages ask for /favicon.ico whatever the page links.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.ico"), permanent=True)),
    path("accounts/api-tokens/", include(token_urlpatterns)),
    path("accounts/notifications/", preferences, name="notification_preferences"),
    path("metrics", metrics, name="metrics"),
    path("accounts/", include("portal.accounts.urls")),
    path("api/", include("portal.api.urls")),
    path("admin/", admin.site.urls),
    path("reviews/", include("portal.reviews.urls")),
    path("audit/", include("portal.audit.urls")),
    path("", include("portal.cards.urls")),
    path("", include("portal.cases.urls")),
]

# A request with more files than DATA_UPLOAD_MAX_NUMBER_FILES is refused by Django itself
# (TooManyFilesSent, 400) before any view runs; this page says so plainly.
handler400 = "portal.cases.views.bad_request"
# Any uncaught exception: a plain page; an unreachable database: 503 with Retry-After.
handler500 = "portal.errors.server_error"
