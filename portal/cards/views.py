"""Model cards: what each model version is, how well it did, and its limits.

Model versions serve every clinic, so any logged-in member of a clinic (results link here)
may read any version's card; a user without a clinic gets 404. The card is rendered from the
version's artifact metadata by ``ml.card``; nothing is written per version by hand."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from classifier.models import ModelVersion
from classifier.registry import PLOTS, plot_path, plot_response
from ml.card import build_card
from portal.accounts.models import Clinic
from portal.types import AuthenticatedRequest

PLOT_TITLES = {"roc": "ROC curve (validation)", "confusion": "Confusion matrix (validation)"}


def _version_for(user: User, version_id: int) -> ModelVersion:
    if not Clinic.objects.for_user(user).exists():
        raise Http404("No such model version.")
    return get_object_or_404(ModelVersion.objects.select_related("override_by"), pk=version_id)


@login_required
@require_GET
def model_card(request: AuthenticatedRequest, version_id: int) -> HttpResponse:
    version = _version_for(request.user, version_id)
    card = build_card(
        version.metadata or {}, min_auc=settings.MODEL_MIN_AUC, min_accuracy=settings.MODEL_MIN_ACCURACY
    )
    plots = [(kind, PLOT_TITLES[kind]) for kind in PLOTS if plot_path(version, kind)]
    return render(request, "cards/model_card.html", {"version": version, "card": card, "plots": plots})


@login_required
@require_GET
def model_card_plot(request: AuthenticatedRequest, version_id: int, kind: str) -> FileResponse:
    return plot_response(_version_for(request.user, version_id), kind)
