from django.http import HttpRequest

from portal.accounts.access import CAN_ADMINISTER, CAN_REVIEW
from portal.accounts.models import Clinic


def memberships(request: HttpRequest) -> dict[str, bool]:
    """Navigation flags: which sections the signed-in user may open."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav_can_review": Clinic.objects.where_role(user, CAN_REVIEW).exists(),
        "nav_can_administer": Clinic.objects.where_role(user, CAN_ADMINISTER).exists(),
    }
