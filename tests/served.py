"""Requests through the WSGI application gunicorn serves (iit_service.wsgi), closed when the caller says.

Django's test client runs deferred work (iit_service.after_response) at once; a server runs it when it
closes the response. Tests of that order call the application as a server does. Use them in transactional
tests: closing a response ends the request's database use, as Django does at the end of every request.
"""

from __future__ import annotations

import io
import json


def served(method: str, path: str, *, token: str, **headers: str):
    """(the response iterable, not yet closed; its status line; its body, parsed when JSON)."""
    from iit_service.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "HTTP_HOST": "testserver",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    statuses: list[str] = []
    result = application(environ, lambda status, response_headers: statuses.append(status))
    body = b"".join(result)
    try:
        return result, statuses[0], json.loads(body)
    except ValueError:
        return result, statuses[0], body
