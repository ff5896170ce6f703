"""Password-reset e-mails are rate-limited, so that nobody can flood a mailbox with them.

At most PASSWORD_RESET_MAILS_PER_HOUR requests an hour for one account (or, for an address
with no account, for that address) and PASSWORD_RESET_REQUESTS_PER_HOUR from one client
address. Past either, the page answers exactly as always ("sent, if the address is known"),
so the limit tells nothing about the address either; no mail goes out, and the audit trail
says so. The counters (fixed one-hour windows) live in Django's cache: Redis in production,
shared by every web process. While the cache is unreachable a request goes through, with a
warning in the log, as the API's throttles do.
"""

import hashlib
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from redis.exceptions import RedisError

from portal.audit.ip import client_ip

log = logging.getLogger(__name__)
WINDOW_SECONDS = 3600


def _count(key: str) -> int:
    cache.add(key, 0, timeout=WINDOW_SECONDS)  # starts the window; a no-op while it runs
    return cache.incr(key)


def reset_allowed(request: HttpRequest, email: str, user_ids: Iterable[int]) -> bool:
    """Count this request; False once the account (or address) or the client is past its limit."""
    ids = sorted(user_ids)
    recipient = (f"user:{','.join(map(str, ids))}" if ids
                 else "email:" + hashlib.sha256(email.strip().lower().encode()).hexdigest())
    try:
        by_recipient = _count(f"password-reset:{recipient}")
        by_client = _count(f"password-reset:client:{client_ip(request) or 'unknown'}")
    except (RedisError, OSError, ValueError) as exc:  # ValueError: the key expired in between
        log.warning("password-reset rate limit not applied: %s", exc)
        return True
    return (by_recipient <= settings.PASSWORD_RESET_MAILS_PER_HOUR
            and by_client <= settings.PASSWORD_RESET_REQUESTS_PER_HOUR)
