"""DRF throttles whose rates are read from the settings at each request (API_THROTTLE_*)."""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class _FromSettings:
    setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.setting)


class ApiUserThrottle(_FromSettings, UserRateThrottle):
    scope = "api_user"
    setting = "API_THROTTLE_USER"


class ApiAnonThrottle(_FromSettings, AnonRateThrottle):
    scope = "api_anon"
    setting = "API_THROTTLE_ANON"


class ApiUploadThrottle(_FromSettings, UserRateThrottle):
    scope = "api_upload"
    setting = "API_THROTTLE_UPLOAD"
