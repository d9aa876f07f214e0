"""Request id, access log, error counters, requests in flight, slow-request and denial logs, query timing.

Order in MIDDLEWARE: ``RequestIdMiddleware`` first (every later log line of
the request carries its id), ``ObservabilityMiddleware`` right after it.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextlib import AbstractContextManager, nullcontext

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from iit_service.after_response import after_response
from iit_service.api.caller import client_address
from iit_service.api.errors import error_body
from monitoring.observability.instrumentation import query_timing
from monitoring.observability.logging import request_id_var
from monitoring.observability.metrics import API_CLIENT_ERRORS, API_ERRORS, WEB_REQUESTS_IN_FLIGHT

access_log = logging.getLogger("iit.access")
error_log = logging.getLogger("iit.error")
performance_log = logging.getLogger("iit.performance")
security_log = logging.getLogger("iit.security")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
UNMATCHED = "<unmatched>"
# Probes and scrapes are not load: a scrape would otherwise always find itself in flight.
PROBE_PATHS = ("/metrics", "/health")
# Exceptions Django turns into a 4xx answer (django.core.handlers.exception.response_for_exception).
CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)


class ObservedRequest(HttpRequest):
    """A request as these middlewares mark it: its id, and the class of an exception a view raised."""

    request_id: str
    _iit_exception: str


class RequestIdMiddleware:
    """Takes a sane X-Request-ID from the caller (a proxy's) or makes one; echoes it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: ObservedRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            request_id_var.reset(token)


class ObservabilityMiddleware:
    """Times each request; its access-log line, metrics and security lines follow once the response has gone.

    The lines are written after the response (iit_service.after_response): two or three formatted writes per
    request (the access log, a token's use) that the caller need not wait for. The duration they report is
    taken before, so it is the time the caller waited on this part of the stack.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: ObservedRequest) -> HttpResponse:
        started = time.perf_counter()
        with query_timing(), self._in_flight(request):
            response = self.get_response(request)
        seconds = time.perf_counter() - started
        after_response(lambda: request_observed(request, response, seconds))
        return response

    @staticmethod
    def _in_flight(request: HttpRequest) -> AbstractContextManager:
        """iit_web_requests_in_flight counts the request while the application serves it."""
        if request.path.startswith(PROBE_PATHS):
            return nullcontext()
        return WEB_REQUESTS_IN_FLIGHT.track_inprogress()

    def process_exception(self, request: ObservedRequest, exception: Exception) -> None:
        if isinstance(exception, CLIENT_ERRORS):
            # Django answers these with a 4xx (a missing object, a permission the user lacks): the request
            # was refused, nothing failed. A warning as Django's own, no traceback, and no crash label.
            refused = {"event": "request_refused", "exception": type(exception).__name__, "path": request.path}
            error_log.warning("request refused", extra={**refused, "method": request.method})
            return
        request._iit_exception = type(exception).__name__
        error_log.error(
            "unhandled exception",
            exc_info=exception,
            extra={"event": "unhandled_exception", "method": request.method, "path": request.path},
        )


def request_observed(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    endpoint = endpoint_of(request)
    method = request.method if request.method in _METHODS else "OTHER"
    status = response.status_code
    user = getattr(request, "user", None)
    username = user.get_username() if user is not None and user.is_authenticated else None
    fields = {
        "method": request.method,
        "path": request.path,
        "endpoint": endpoint,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "user": username,
        "client_address": client_address(request),
        # Written after the response, when the request's context (logging's request id) is gone.
        "request_id": getattr(request, "request_id", ""),
    }
    access_log.info("request", extra={"event": "request", **fields})
    if status >= 400:
        counter = API_ERRORS if status >= 500 else API_CLIENT_ERRORS
        counter.labels(endpoint=endpoint, method=method, status=str(status), error=error_class(request, response)).inc()
    if seconds > settings.SLOW_REQUEST_SECONDS:
        performance_log.warning("slow request", extra={"event": "slow_request", **fields})
    if status in (401, 403):
        security_log.warning("access denied", extra={"event": "access_denied", **fields})
    elif username and _token_auth(request):
        security_log.info("token used", extra={"event": "token_used", **fields})


def endpoint_of(request: HttpRequest) -> str:
    """The URL pattern that served the request ("api/v1/patients/<int:pk>/"), never the concrete path."""
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED


def error_class(request: HttpRequest, response: HttpResponse) -> str:
    """The exception class for crashes, else the error code of the one JSON error shape."""
    crashed = getattr(request, "_iit_exception", None)
    if crashed:
        return crashed
    data = getattr(response, "data", None)
    if (
        data is None
        and not response.streaming
        and response.get("Content-Type", "").startswith("application/json")
        and len(response.content) < 65536
    ):
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
    code = data.get("error", {}).get("code") if isinstance(data, dict) and isinstance(data.get("error"), dict) else None
    return str(code)[:48] if code else error_body(response.status_code, "")["error"]["code"]


def _token_auth(request: HttpRequest) -> bool:
    auth = getattr(request, "auth", None)
    return auth is not None and type(auth).__name__ == "Token"
