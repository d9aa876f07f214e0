"""Work a request needs done but its caller need not wait for, run once the response has been sent.

A WSGI server calls the response's ``close()`` after sending its last byte (PEP 3333); ``AfterResponse``
wraps the application so that work deferred with ``after_response`` during a request runs then, in the same
worker, before Django's own end-of-request handling (``request_finished``). A scored prediction's write to
the shared cache is such work: the row is stored and the answer is complete without it, so the clinician
does not wait on a round trip to Redis. Outside a request served this way (a Celery task, a management
command, Django's test client) the work runs at once. A failure is logged, never raised: the response has
gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

log = logging.getLogger("iit.error")

_pending: ContextVar[list[Callable[[], object]] | None] = ContextVar("after_response", default=None)


def after_response(work: Callable[[], object]) -> None:
    """Run ``work`` once this request's response is sent, or now when there is no such request."""
    pending = _pending.get()
    if pending is None:
        work()
    else:
        pending.append(work)


class AfterResponse:
    """WSGI middleware around the Django application (iit_service.wsgi)."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> object:
        pending: list[Callable[[], object]] = []
        token = _pending.set(pending)
        try:
            result = self.application(environ, start_response)
        except BaseException:  # no response to close: what the request deferred (an audit line) runs now
            _run(pending)
            raise
        finally:
            _pending.reset(token)
        if not pending:
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            # A server sends a file with sendfile only when it gets its own wrapper back (PEP 3333), as it does
            # a static file: that work (the access log's line) runs now, before the file goes, instead.
            _run(pending)
            return result
        return _ThenRun(result, pending)


class _ThenRun:
    def __init__(self, result, pending: list[Callable[[], object]]):
        self.result, self.pending = result, pending

    def __iter__(self):
        return iter(self.result)

    def close(self) -> None:
        try:
            _run(self.pending)
        finally:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()


def _run(pending: list[Callable[[], object]]) -> None:
    for work in pending:
        try:
            work()
        except Exception:
            log.exception("work after the response failed", extra={"event": "after_response_failed"})
