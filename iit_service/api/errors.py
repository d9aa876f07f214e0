"""One JSON error shape for every 4xx and 5xx the service answers, and the one mapping of refusals to it.

    {"error": {"status": 400, "code": "validation_error",
               "message": "Invalid input.", "details": {...}}}

``details`` carries DRF's field-level messages on validation errors.  The same
body is produced by DRF views (``exception_handler``) and by Django itself for
errors raised outside DRF (``handler400`` … ``handler500`` in the URL conf).
Services raise ``iit_service.errors`` (no HTTP there); ``api_exception`` below
is the one place that says which status and code each kind of refusal answers.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from iit_service import errors

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
    422: "unprocessable",
    429: "throttled",
    500: "server_error",
    503: "service_unavailable",
}


def error_body(status_code: int, message: str, *, code: str | None = None, details=None) -> dict:
    body = {"status": status_code, "code": code or _CODES.get(status_code, "error"), "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


# The status of each kind of refusal a service raises (the first that matches; its code is the error's own).
DOMAIN_STATUS = (
    (errors.NotFound, status.HTTP_404_NOT_FOUND),
    (errors.Invalid, status.HTTP_400_BAD_REQUEST),
    (errors.CredentialsRefused, status.HTTP_401_UNAUTHORIZED),
    (errors.Conflict, status.HTTP_409_CONFLICT),
    (errors.Unprocessable, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (errors.Unavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
)


class DomainRefusal(exceptions.APIException):
    """A service's refusal as DRF's exception, with the field-level ``details`` it may carry."""

    details: object = None


def api_exception(exc: errors.DomainError, context: dict) -> exceptions.APIException:
    """The DRF exception a service's refusal answers as; DRF then adds headers and rolls back as for its own."""
    if isinstance(exc, errors.Invalid):
        return exceptions.ValidationError(exc.details)
    if isinstance(exc, errors.CredentialsRefused):
        # As DRF does for its own: 401 says which scheme to use (WWW-Authenticate); a view with none answers 403.
        refused = exceptions.AuthenticationFailed(exc.message, code=exc.code)
        view, request = context.get("view"), context.get("request")
        header = view.get_authenticate_header(request) if view is not None else None
        if header:
            refused.auth_header = header  # type: ignore[attr-defined]  # read by DRF's APIView, not in its stubs
        else:
            refused.status_code = status.HTTP_403_FORBIDDEN
        return refused
    answer = DomainRefusal(exc.message, code=exc.code)
    answer.status_code = next(
        (code for kind, code in DOMAIN_STATUS if isinstance(exc, kind)), status.HTTP_500_INTERNAL_SERVER_ERROR
    )
    answer.details = exc.details
    return answer


def exception_handler(exc, context):
    if isinstance(exc, errors.DomainError):
        exc = api_exception(exc, context)
    elif isinstance(exc, RequestDataTooBig):
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


# --- the error shape in the API schema -----------------------------------------------------------


class ErrorDetailOutput(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(required=False)


class ErrorOutput(serializers.Serializer):
    error = ErrorDetailOutput()


# The errors every clinical endpoint may answer, for its schema (extend_schema responses).
ERRORS = {400: ErrorOutput, 401: ErrorOutput, 404: ErrorOutput}
