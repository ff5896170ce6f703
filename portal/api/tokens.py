"""The API tokens page: create (the key is shown once) and revoke your own tokens."""

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal.api.models import ApiToken
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.types import AuthenticatedRequest


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “PACS export script”.")
    days = forms.IntegerField(label="Valid for (days)", min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.IntegerField, self.fields["days"]).max_value = settings.API_TOKEN_MAX_DAYS
        self.fields["days"].widget.attrs["max"] = settings.API_TOKEN_MAX_DAYS
        self.fields["days"].initial = settings.API_TOKEN_DAYS

    def clean_days(self) -> int:
        days = self.cleaned_data["days"]
        if days > settings.API_TOKEN_MAX_DAYS:
            raise forms.ValidationError(f"At most {settings.API_TOKEN_MAX_DAYS} days.")
        return days


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: AuthenticatedRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        token, new_key = ApiToken.issue(request.user, form.cleaned_data["name"], form.cleaned_data["days"])
        record(request, AuditEvent.Action.API_TOKEN_CREATED, obj=token, name=token.name,
               hint=token.key_hint, expires=token.expires_at.isoformat())
        messages.success(request, f"Token “{token.name}” created. Copy its key now: it is not shown again.")
        form = TokenForm()
    tokens = request.user.api_tokens.all()
    response = render(request, "api/tokens.html", {"form": form, "tokens": tokens, "new_key": new_key})
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def token_revoke(request: AuthenticatedRequest, token_id: str) -> HttpResponse:
    token = request.user.api_tokens.filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        record(request, AuditEvent.Action.API_TOKEN_REVOKED, obj=token, name=token.name, hint=token.key_hint)
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")
