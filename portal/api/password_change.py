"""A new password revokes the user's API tokens, as it signs out their other sessions.

Django tells every configured password validator of each password change (``password_changed``:
the reset link, the change form, the admin's password form, ``manage.py changepassword``),
but not of a stored hash being upgraded at login. So this hook sits in
``AUTH_PASSWORD_VALIDATORS``; it refuses no password, and its help text tells the user.
"""

import logging
from typing import Any

from django.utils import timezone

log = logging.getLogger(__name__)


class RevokeApiTokensOnPasswordChange:
    def validate(self, password: str, user: Any = None) -> None:
        return None

    def get_help_text(self) -> str:
        return "Setting a new password revokes your API tokens."

    def password_changed(self, password: str, user: Any = None) -> None:
        from portal.api.models import ApiToken
        from portal.audit.log import record
        from portal.audit.models import AuditEvent

        if user is None or user.pk is None:
            return
        tokens = list(ApiToken.objects.filter(user=user, revoked_at__isnull=True))
        if not tokens:
            return
        ApiToken.objects.filter(pk__in=[token.pk for token in tokens]).update(revoked_at=timezone.now())
        for token in tokens:
            record(None, AuditEvent.Action.API_TOKEN_REVOKED, obj=token, actor=user, name=token.name,
                   hint=token.key_hint, reason="password changed")
        log.info("revoked %d API token(s) of user %s after a password change", len(tokens), user.pk)
