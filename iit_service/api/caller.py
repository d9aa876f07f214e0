"""What the API tells services about a request: the caller, never the request itself."""

from __future__ import annotations

import ipaddress

from rest_framework.settings import api_settings

from iit_service.caller import Caller


def client_address(request) -> str | None:
    """The caller's address, as DRF's throttles pick it (``NUM_PROXIES``, setting ``TRUSTED_PROXIES``).

    With no trusted proxies it is the socket peer and ``X-Forwarded-For`` is ignored: any client can
    write that header. Behind N proxies it is the N-th entry from the right, the one the outermost
    trusted proxy appended. A value that is not an IP address falls back to the socket peer, so a
    malformed header never reaches the audit log's address column. The audit log, the security log,
    the login lockout (``AXES_CLIENT_IP_CALLABLE``) and the throttles all see this one address.
    """
    peer = _ip(request.META.get("REMOTE_ADDR"))
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies == 0 or not forwarded:
        return peer
    hops = forwarded.split(",")
    return _ip(hops[-min(proxies, len(hops))]) or peer


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def caller_of(request) -> Caller:
    """The request's user, address, request id (monitoring.observability.middleware) and path."""
    return Caller(
        user=getattr(request, "user", None),
        client_address=client_address(request),
        request_id=getattr(request, "request_id", ""),
        path=request.path,
    )
