"""Types the portal's annotations share (no runtime behaviour)."""

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

# request.user: signed in or not.
AnyUser = User | AnonymousUser


class AuthenticatedRequest(HttpRequest):
    """A request that reached a view behind ``login_required``: its user is signed in."""

    user: User
