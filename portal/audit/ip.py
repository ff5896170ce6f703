"""The client's address, for the audit trail and for login throttling alike.

Behind ``PROXY_COUNT`` trusted proxies, each proxy appends the address it received the
request from to X-Forwarded-For, so the client is the PROXY_COUNT-th entry from the right;
entries further left are whatever the client sent and are ignored. With no proxy (the
default), X-Forwarded-For is ignored entirely and REMOTE_ADDR is the client.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except (ValueError, AttributeError):
        return None


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    meta = getattr(request, "META", {})
    remote = _valid(meta.get("REMOTE_ADDR", ""))
    proxies = int(getattr(settings, "AXES_IPWARE_PROXY_COUNT", 0) or 0)
    if proxies <= 0:
        return remote
    hops = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(hops) < proxies:
        return remote  # not the expected chain of proxies: trust only the socket
    return _valid(hops[-proxies]) or remote
