"""DRF throttles whose rates are read from the settings at each request (API_THROTTLE_*).

Their counters live in Django's cache, Redis in production (CACHE_URL), shared by every web
process. When that cache cannot be reached a request is let through, with a warning in the
log: a rate limit is not worth refusing clinicians their results while Redis is away."""

import logging
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

log = logging.getLogger(__name__)


class _FromSettings:
    setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.setting)

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            log.warning("API throttle %s not applied: the cache is unreachable (%s)", self.setting, exc)
            return True


class ApiUserThrottle(_FromSettings, UserRateThrottle):
    scope = "api_user"
    setting = "API_THROTTLE_USER"


class ApiAnonThrottle(_FromSettings, AnonRateThrottle):
    scope = "api_anon"
    setting = "API_THROTTLE_ANON"


class ApiUploadThrottle(_FromSettings, UserRateThrottle):
    scope = "api_upload"
    setting = "API_THROTTLE_UPLOAD"
