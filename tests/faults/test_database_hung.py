"""PostgreSQL frozen (SIGSTOP: the host stalls, its kernel still acknowledges every packet).

The service runs as ops run it (gunicorn, its threads) on a private PostgreSQL server that the test starts,
freezes and thaws; the machine's shared server is never touched. Each API request answers 503 in the one
error shape within 3 s, ``/health/live`` answers within 1 s while those requests wait, and once the server
thaws the same gunicorn serves again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from bench.common import Stack, free_port, http, wait_until
from tests.faults.helpers import patient_ids, predict

pytestmark = pytest.mark.slow
POSTGRES_BIN = Path(shutil.which("postgres") or "/usr/local/bin/postgres").parent


class PostgresServer:
    """A throwaway PostgreSQL cluster in ``directory`` on a free port, in its own process group."""

    def __init__(self, directory: Path):
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen | None = None
        # PostgreSQL refuses to run as root: the cluster then belongs to the "postgres" account.
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/iit"

    def start(self) -> None:
        data = self.directory / "data"
        data.mkdir()
        if self.user:
            shutil.chown(data, self.user)
        subprocess.run([POSTGRES_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust"], user=self.user,
                       check=True, capture_output=True)  # fmt: skip
        self.process = subprocess.Popen(
            [POSTGRES_BIN / "postgres", "-D", data, "-p", str(self.port), "-k", data,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(self._accepts, timeout=60, what="the private PostgreSQL")
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", "CREATE DATABASE iit"],
                       check=True, capture_output=True)  # fmt: skip

    def _accepts(self) -> bool:
        probe = ["pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        return subprocess.run(probe, capture_output=True).returncode == 0

    def signal(self, sig: int) -> None:
        """The postmaster and every backend: the whole server stops (or resumes) at once.

        Each backend has a session of its own (PostgreSQL calls setsid), so they are signalled one by one.
        """
        assert self.process is not None
        postmaster = psutil.Process(self.process.pid)
        for process in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGQUIT)  # immediate shutdown: the cluster is thrown away
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def frozen_service(tmp_path_factory) -> Iterator[dict]:
    if shutil.which("psql") is None or not (POSTGRES_BIN / "initdb").exists():
        pytest.skip("needs PostgreSQL's server binaries (initdb, postgres) to run a private server")
    workdir = tmp_path_factory.mktemp("hung-db")
    # Outside pytest's private temporary tree, which the "postgres" account may not enter.
    cluster = Path(tempfile.mkdtemp(prefix="iit-hung-db-"))
    os.chmod(cluster, 0o755)  # noqa: S103 - the "postgres" account reads its cluster under it
    server = PostgresServer(cluster)
    server.start()
    stack = Stack(workdir, database_url=server.url, env={"HEALTH_PROBE_TIMEOUT": "1", "HEALTH_CELERY": "false"})
    try:
        stack.prepare(patients=150)
        web = stack.start_web(workers=2)
        yield {"stack": stack, "web": web, "server": server, "token": stack.token}
    except Exception:
        stack.print_outputs()
        raise
    finally:
        stack.stop_all()
        server.stop()
        shutil.rmtree(cluster, ignore_errors=True)


def _api_calls(service: dict, ids: list[int], unscored: int) -> list:
    """A prediction (served from the cache when it can be) and two reads that need the database.

    Three, not four: gunicorn's workers each take connections for their own four threads, and the kernel
    may hand every request to one worker. With three stuck there, a thread is always free for
    ``/health/live``; with four, its answer would depend on which worker accepted it.
    """
    web, token = service["web"], service["token"]
    return [
        lambda: predict(service, ids[unscored], timeout=20),
        lambda: http("GET", f"{web}/api/v1/patients/", token=token, timeout=20),
        lambda: http("GET", f"{web}/api/v1/patients/{ids[1]}/", token=token, timeout=20),
    ]


def test_a_frozen_database_is_a_fast_503_live_stays_quick_and_the_service_recovers(frozen_service):
    service = frozen_service
    ids = patient_ids(service)
    with ThreadPoolExecutor(max_workers=3) as pool:  # the worker threads open their connections
        assert all(a.result()[0] in (200, 201) for a in [pool.submit(c) for c in _api_calls(service, ids, 0)])
    web_pid = service["stack"].processes["web"].pid
    service["server"].signal(signal.SIGSTOP)
    try:
        for unscored in (2, 3):  # first on the kept connections, then on new ones the frozen server never accepts
            with ThreadPoolExecutor(max_workers=3) as pool:
                answers = [pool.submit(call) for call in _api_calls(service, ids, unscored)]
                time.sleep(0.3)  # the API requests are now waiting on the database
                live = http("GET", f"{service['web']}/health/live", timeout=20)
                answered = [answer.result() for answer in answers]
            assert live[0] == 200 and live[2] < 1.0, live
            assert all(seconds < 3.0 for _, _, seconds in answered), answered
            assert answered[0][0] in (200, 201, 503), answered[0]
            for status, body, _ in answered[1:]:
                assert status == 503 and body["error"]["code"] == "database_unavailable", [
                    (a[0], a[2]) for a in answered
                ]
        status, body, seconds = http("GET", f"{service['web']}/health", timeout=20)
        assert status == 503 and body["database_connected"] is False and seconds < 3.0
    finally:
        service["server"].signal(signal.SIGCONT)
    wait_until(lambda: predict(service, ids[0])[0] in (200, 201), timeout=30, what="predictions after the thaw")
    assert all(call()[0] in (200, 201) for call in _api_calls(service, ids, 4))
    assert http("GET", f"{service['web']}/health", timeout=20)[1]["database_connected"] is True
    assert service["stack"].processes["web"].pid == web_pid and service["stack"].processes["web"].poll() is None
