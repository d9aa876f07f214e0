"""A database outage is a 503 in the one error shape, answered at once, never a 500 with a traceback.

Django raises OperationalError/InterfaceError when PostgreSQL cannot be
reached or a connection broke; every later request opens a new connection,
so the service recovers by itself when the database returns. A deadlock or
serialization failure is an OperationalError too, but the database answered:
it is a 409 ``conflict`` (the services retry it first), not an outage.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest

from iit_service.api.errors import json_error
from iit_service.db import rolled_back_for_concurrency

error_log = logging.getLogger("iit.error")
RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        if rolled_back_for_concurrency(exception):  # the database answered: a write lost a race, retries included
            error_log.warning("write conflict", extra={"event": "write_conflict", "path": request.path})
            return json_error(409, "A concurrent write got in the way; send the request again.", code="conflict")
        error_log.error(
            "database unavailable",
            extra={"event": "database_unavailable", "path": request.path, "error": str(exception)[:300]},
        )
        response = json_error(503, "The database is unavailable; try again shortly.", code="database_unavailable")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
