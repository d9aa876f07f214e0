"""One JSON error shape for every 4xx and 5xx the service answers.

    {"error": {"status": 400, "code": "validation_error",
               "message": "Invalid input.", "details": {...}}}

``details`` carries DRF's field-level messages on validation errors.  The same
body is produced by DRF views (``exception_handler``) and by Django itself for
errors raised outside DRF (``handler400`` … ``handler500`` in the URL conf).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "service_unavailable",
}


def error_body(status_code: int, message: str, *, code: str | None = None, details=None) -> dict:
    body = {"status": status_code, "code": code or _CODES.get(status_code, "error"), "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.APIException("Request body is too large.")
        exc.status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers in the same shape
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(response.status_code, "Invalid input.", code="validation_error", details=exc.detail)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None)
        code = code if code not in (None, "error") else None
        # An APIException may carry field-level ``details`` too (e.g. a 404 naming the rows of a batch).
        body = error_body(response.status_code, str(detail), code=code, details=getattr(exc, "details", None))
    return Response(body, status=response.status_code, headers=_keep_headers(response))


def _keep_headers(response: Response) -> dict:
    return {name: value for name, value in response.items() if name in ("WWW-Authenticate", "Retry-After", "Allow")}


def json_error(status_code: int, message: str, *, code: str | None = None, details=None) -> JsonResponse:
    return JsonResponse(error_body(status_code, message, code=code, details=details), status=status_code)


def handler400(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, "Request body is too large.")
    return json_error(400, "Bad request.")


def handler403(request, exception=None):
    return json_error(403, "You do not have permission to perform this action.")


def handler404(request, exception=None):
    return json_error(404, "Not found.")


@csrf_exempt  # it changes nothing; a cookie-bearing POST must get this 404, not the CSRF check's HTML 403
def api_not_found(request, *args, **kwargs):
    """Any unrouted path under /api/: the JSON 404 even in DEBUG, where Django would answer an HTML page."""
    return json_error(404, "Not found.")


def handler500(request):
    return json_error(500, "Internal server error.")
