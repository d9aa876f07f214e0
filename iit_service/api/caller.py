"""What the API tells services about a request: the caller, never the request itself."""

from __future__ import annotations

from iit_service.caller import Caller


def client_address(request) -> str | None:
    """The caller's address: the first X-Forwarded-For hop when a proxy set it, else the socket peer."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    address = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR")
    return address or None


def caller_of(request) -> Caller:
    """The request's user, address, request id (monitoring.observability.middleware) and path."""
    return Caller(
        user=getattr(request, "user", None),
        client_address=client_address(request),
        request_id=getattr(request, "request_id", ""),
        path=request.path,
    )
