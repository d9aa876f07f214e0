"""iit_service.after_response: deferred work runs once the server has sent the response (PEP 3333 close())."""

from __future__ import annotations

import logging

import pytest

from iit_service.after_response import AfterResponse, after_response


class _Body(list):
    closed = False

    def close(self):
        self.closed = True


def _served(work_done: list, *, fail: bool = False):
    body = _Body([b"answer"])

    def application(environ, start_response):
        def work():
            if fail:
                raise RuntimeError("cache down")
            work_done.append("done")

        after_response(work)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    return AfterResponse(application), body


def test_deferred_work_waits_until_the_server_closes_the_response():
    done: list = []
    application, body = _served(done)
    result = application({}, lambda status, headers: None)
    assert b"".join(result) == b"answer" and done == []  # the whole answer is out, the work not yet done
    result.close()
    assert done == ["done"] and body.closed


def test_failed_deferred_work_is_logged_and_the_response_still_closed(caplog):
    application, body = _served([], fail=True)
    result = application({}, lambda status, headers: None)
    with caplog.at_level(logging.ERROR, logger="iit.error"):
        result.close()
    assert body.closed
    assert [r.event for r in caplog.records] == ["after_response_failed"] and "cache down" in caplog.text


def test_a_response_that_deferred_nothing_goes_back_untouched():
    body = _Body([b"file"])
    application = AfterResponse(lambda environ, start_response: body)
    assert application({}, lambda status, headers: None) is body


def test_a_file_the_server_would_send_itself_goes_back_untouched_after_the_work():
    class FileWrapper(_Body):  # the server's wsgi.file_wrapper, whose instances it sends with sendfile
        pass

    done: list = []
    body = FileWrapper([b"file"])

    def application(environ, start_response):
        after_response(lambda: done.append("done"))
        return body

    result = AfterResponse(application)({"wsgi.file_wrapper": FileWrapper}, lambda status, headers: None)
    assert result is body and done == ["done"]


def test_outside_a_served_request_the_work_runs_at_once():
    done: list = []
    after_response(lambda: done.append("now"))
    assert done == ["now"]


def test_each_request_defers_only_its_own_work():
    done: list = []
    results = []
    for _ in range(2):
        application, _body = _served(done)
        results.append(application({}, lambda status, headers: None))
    results[0].close()
    assert done == ["done"]
    results[1].close()
    assert done == ["done", "done"]


def test_work_deferred_by_a_request_that_then_raised_still_runs():
    done: list = []

    def application(environ, start_response):
        after_response(lambda: done.append("audit line"))
        raise RuntimeError("the application failed before answering")

    with pytest.raises(RuntimeError):
        AfterResponse(application)({}, lambda status, headers: None)
    assert done == ["audit line"]
