"""Real local stand-ins for the outside world: an HTTP server and an SMTP server on 127.0.0.1.

Slack, PagerDuty and a generic webhook are replaced by ``RecordingHTTPServer``;
the ops mailbox by ``RecordingSMTPServer`` (aiosmtpd).  Both record what they
received, so tests assert on what actually went over the wire.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

PAGERDUTY_KEY = "R0UTINGKEY0000000000000000000000"


def free_port() -> int:
    """A port nothing listens on (also what a "closed port" channel points at)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingHTTPServer:
    def __init__(self, *, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler_class(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recorder._lock:
                    recorder.requests.append({"path": self.path, "json": json.loads(body or b"null")})
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "recorded"}')

            def log_message(self, *args):
                pass

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/hook"

    def __enter__(self) -> RecordingHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


class RecordingSMTPServer:
    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list:
        return self.mailbox.messages

    def __enter__(self) -> RecordingSMTPServer:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()
