"""Login throttling: django-axes' database handler with three counters, each with its limit.

axes keeps one AccessAttempt row per (account, address, browser) with its failure count,
and locks a login when ``get_failures()`` reaches AXES_FAILURE_LIMIT. Counting is done here:

- one account from one address: LOGIN_FAILURE_LIMIT (5), for everyone;
- one address, any accounts: LOGIN_ADDRESS_FAILURE_LIMIT (100), so that a clinic behind one
  NAT address is not locked out by one person's typos or by someone trying names;
- one account, any addresses: LOGIN_ACCOUNT_FAILURE_LIMIT (20), so that a brute force spread
  over many addresses still stops; a browser that signed in to that account before (a
  signed "known device" cookie) is exempt from the last two, so that such an attack cannot
  lock the real user out either.

The address and account counts are scaled onto axes' single limit: ``floor(n * L / M)``
reaches L exactly when n reaches M. Windows are LOGIN_COOLOFF_MINUTES since the last failure.
A successful login clears only that account's failures from that address: clearing by
address would let an attacker with an account of their own reset their counter at will.
"""

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.core import signing
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse

DEVICE_COOKIE = "neuroai_device"
_SALT = "portal.accounts.known-device"
_MAX_ACCOUNTS_PER_DEVICE = 10


def _failures(**filters: Any) -> int:
    return AccessAttempt.objects.filter(**filters).aggregate(n=Sum("failures_since_start"))["n"] or 0


def known_accounts(request: HttpRequest) -> list[str]:
    """Usernames that have signed in from this browser before (validated, not expired)."""
    value = request.COOKIES.get(DEVICE_COOKIE)
    if not value:
        return []
    try:
        names = signing.loads(
            value, salt=_SALT, max_age=settings.LOGIN_KNOWN_DEVICE_DAYS * 86400
        )
    except signing.BadSignature:
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def remember_device(request: HttpRequest, response: HttpResponse, username: str) -> None:
    """Mark this browser as one ``username`` has signed in from (after a correct password)."""
    names = [username] + [n for n in known_accounts(request) if n != username]
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(names[:_MAX_ACCOUNTS_PER_DEVICE], salt=_SALT),
        max_age=settings.LOGIN_KNOWN_DEVICE_DAYS * 86400,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


class AxesRequest(HttpRequest):
    """A request as django-axes hands it to its handler, the client's address found."""

    axes_ip_address: str


class LoginThrottle(AxesDatabaseHandler):
    def get_failures(self, request: AxesRequest, credentials: dict[str, Any] | None = None) -> int:
        username = get_client_username(request, credentials)
        address = request.axes_ip_address
        recent = {"attempt_time__gte": get_cool_off_threshold(request)}
        limit = settings.AXES_FAILURE_LIMIT

        def scaled(count: int, own_limit: int) -> int:
            return count * limit // own_limit

        counts = [_failures(username=username, ip_address=address, **recent)]
        if username not in known_accounts(request):
            counts.append(scaled(_failures(ip_address=address, **recent), settings.LOGIN_ADDRESS_FAILURE_LIMIT))
            if username:
                counts.append(
                    scaled(_failures(username=username, **recent), settings.LOGIN_ACCOUNT_FAILURE_LIMIT)
                )
        return max(counts)

    def reset_user_attempts(self, request: AxesRequest, credentials: dict[str, Any] | None = None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count


def clear_account_failures(username: str) -> None:
    """After the account's owner proved themselves another way (a password reset)."""
    AccessAttempt.objects.filter(username=username).delete()
