"""Login lockout with django-axes: its backend, and its answer in the service's one error shape.

Axes counts failed logins per username and address (settings ``AXES_*``) for
the admin login form and the API token endpoint, which both authenticate
with the request.  A call to ``authenticate()`` without a request (the test
client's ``login()``, a shell) has no address to count against and is no
HTTP login attempt; it is passed to the next backend instead of refused.
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from django.conf import settings
from django.http import HttpRequest, JsonResponse

from iit_service.api.errors import json_error


class LockoutBackend(AxesStandaloneBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs):  # fmt: skip
        if request is None:
            return None
        # DRF wraps the HttpRequest; axes' middleware looks for its lockout flag on the wrapped one.
        request = getattr(request, "_request", request)
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        except AxesBackendPermissionDenied:
            # So the middleware answers 429 (axes leaves it to its signal).
            request.axes_locked_out = True  # type: ignore[union-attr]  # axes' own flag on Django's request
            raise


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> JsonResponse:
    response = json_error(
        429, "Too many failed logins: this account is locked for a while. Try again later.", code="locked_out"
    )
    response["Retry-After"] = str(_cooloff_seconds())
    return response


def _cooloff_seconds() -> int:
    return int(float(settings.AXES_COOLOFF_TIME) * 3600)
