from django.http import HttpRequest

from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW, clinics_where


def memberships(request: HttpRequest) -> dict[str, bool]:
    """Navigation flags: which sections the signed-in user may open."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav_can_review": clinics_where(user, CAN_REVIEW).exists(),
        "nav_can_administer": clinics_where(user, CAN_ADMINISTER).exists(),
    }
