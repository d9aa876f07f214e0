"""The service as ops run it (gunicorn, Celery), with its dependencies behind switches the tests flip.

* Redis is this test's own ``redis-server`` on a free port in a temporary
  directory (never the machine's Redis), so it can be stopped and started.
* PostgreSQL (when DATABASE_URL is PostgreSQL) is reached through a small TCP
  forwarder the test can cut and restore.
* The Celery broker is the filesystem transport, so a Redis outage is a
  cache outage only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import Stack, free_port, fresh_database, wait_until

REDIS_SERVER = shutil.which("redis-server")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            _close(listener)  # shutdown first: a bare close() does not wake the thread blocked in accept()
        with self.lock:
            for connection in self.connections:
                _close(connection)
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if self.listener is not listener:
                _close(client)
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class RedisServer:
    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True,
                   timeout=20, what="redis-server")  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


def postgres_target() -> tuple[str, int] | None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return None
    parsed = urllib.parse.urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 5432


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Iterator[dict]:
    """gunicorn (two workers) on a prepared database, its cache on our Redis, PostgreSQL through our proxy."""
    if REDIS_SERVER is None:
        pytest.skip("needs redis-server: the tests stop and start their own Redis")
    workdir = tmp_path_factory.mktemp("faults")
    redis = RedisServer(workdir)
    redis.start()
    with fresh_database(workdir, label="faults") as database_url:
        stack = Stack(workdir, database_url=database_url, env={"REDIS_URL": redis.url})
        stack.prepare(patients=300)
        proxy = None
        target = postgres_target()
        if target is not None:
            proxy = TcpProxy(target)
            parsed = urllib.parse.urlparse(database_url)
            stack.env["DATABASE_URL"] = parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{proxy.port}").geturl()
        stack.env.update(
            CELERY_BROKER_URL="filesystem://", MODEL_VERSION_CHECK_SECONDS="0.5", HEALTH_PROBE_TIMEOUT="1",
            REDIS_CONNECT_TIMEOUT="0.5", REDIS_SOCKET_TIMEOUT="0.5", DB_CONN_MAX_AGE="60",
            HEALTH_CELERY="false",  # no worker runs beside this web tier unless a test starts one
        )  # fmt: skip
        try:
            web = stack.start_web(workers=2)
            yield {"stack": stack, "web": web, "redis": redis, "proxy": proxy, "token": stack.token}
        except Exception:
            stack.print_outputs()
            raise
        finally:
            stack.stop_all()
            if proxy is not None:
                proxy.cut()
            redis.stop()
            time.sleep(0.5)  # let PostgreSQL see the last sessions end before the database is dropped
