"""The refusals services raise: what went wrong in the domain's words, never an HTTP status.

A service says *what* it refuses; ``iit_service.api.errors`` alone says how the
API answers each kind (status, code, the one error shape), so services know
nothing of HTTP or DRF and a command or a job can call them too.

    NotFound            404  no such thing, or one outside the caller's facilities (the same answer: no leak)
    Invalid             400  input the service refuses, field by field (``details``), as a serializer would
    CredentialsRefused  401  a wrong username or password
    Conflict            409  the request contradicts the record's state
    Unprocessable       422  the record holds too little for the request (nothing yet to predict from)
    Unavailable         503  a dependency (the model, the task queue) cannot serve now

``code`` is the machine-readable code the API reports (each kind has a default;
a subclass or a raise may be more specific), ``details`` the optional
structured payload (field errors, the rows of a batch).
"""

from __future__ import annotations


class DomainError(Exception):
    code = "error"
    default_message = "The request cannot be served."

    def __init__(self, message: str | None = None, *, code: str | None = None, details=None):
        super().__init__(message or self.default_message)
        if code is not None:
            self.code = code
        self.details = details

    @property
    def message(self) -> str:
        """What the caller is told (``str(error)`` unless a kind words it for callers of the API)."""
        return str(self)


class NotFound(DomainError):
    """Nothing the caller may see has this name: it does not exist, or it is another facility's."""

    code = "not_found"
    default_message = "Not found."


class Invalid(DomainError):
    """Refused input; ``details`` maps each field (or a batch's row index) to its messages."""

    code = "validation_error"
    default_message = "Invalid input."

    def __init__(self, details: dict, message: str | None = None):
        super().__init__(message, details=details)


class CredentialsRefused(DomainError):
    code = "authentication_failed"
    default_message = "Unable to log in with the provided credentials."


class Conflict(DomainError):
    code = "conflict"
    default_message = "The request conflicts with the current state of the record."


class Unprocessable(DomainError):
    code = "unprocessable"
    default_message = "The record does not hold what this request needs."


class Unavailable(DomainError):
    code = "service_unavailable"
    default_message = "The service is unavailable; try again later."
