"""scripts/run (what `make run` calls) really starts the service on the embedded default, and stops cleanly.

Its terminal stays calm: its own messages, ending with the credentials; every log line goes to files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("timed out")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def service(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IIT_VAR_DIR": str(tmp_path / "var"),
        "DEMO_PATIENTS": "600",
        "DEMO_ADMIN_PASSWORD": "run-script-test-password",
        "RESTART_DELAY_SECONDS": "0.2",  # a dead process is started again after this pause (2 s by default)
    }
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        ["./scripts/run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    yield process, f"http://127.0.0.1:{port}", tmp_path / "run.log"
    if group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


@pytest.mark.slow
def test_the_run_script_serves_demo_data_with_the_printed_token_and_stops_its_children(service):
    process, base, log = service

    def up() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return get(f"{base}/health/live")[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=300)
    wait_for(lambda: "== ready on" in log.read_text(), timeout=30)
    output = log.read_text()
    token = re.search(r"token\s+([0-9a-f]{40})", output).group(1)
    assert f"export TOKEN={token}" in output
    assert "run-script-test-password" in output
    for url in ("/api/docs/", "/admin/", "/health", "/metrics"):
        assert f"{base}{url}" in output

    [backup] = (log.parent / "var" / "backups").glob("*.sqlite3")  # the first backup, taken at start
    assert backup.read_bytes().startswith(b"SQLite format 3")
    assert "job failed" not in output

    status, body = get(f"{base}/api/v1/patients/", token)
    assert status == 200
    assert body["count"] == 600
    assert "Demo patients by care state today: in_care" in (log.parent / "var" / "log" / "setup.log").read_text()
    assert {row["care_state"] for row in body["results"]} <= {
        "in_care",
        "late",
        "interrupted",
        "died",
        "transferred_out",
    }
    status, listed = get(f"{base}/api/v1/predictions/?facility=DEMO-001&page_size=1000", token)
    assert status == 200 and listed["count"] > 0
    assert {row["care_state"] for row in listed["results"]} <= {"in_care", "late"}
    status, tracing = get(f"{base}/api/v1/tracing/?facility=DEMO-001&page_size=1000", token)
    assert status == 200 and {row["care_state"] for row in tracing["results"]} <= {"interrupted"}
    assert get(f"{base}/api/v1/patients/")[0] == 401
    urllib.request.urlopen(f"{base}/static/admin/css/base.css", timeout=10).close()

    # Requests (static files too) were logged to files, not to the terminal, whose last lines are the credentials.
    access = (log.parent / "var" / "log" / "access.log").read_text()
    assert '"path": "/api/v1/patients/"' in access and '"path": "/static/admin/css/base.css"' in access
    terminal = log.read_text().rstrip().splitlines()
    assert not [line for line in terminal if line.lstrip().startswith("{")]
    assert terminal[-1] == f"   export TOKEN={token}" and "run-script-test-password" in terminal[-3]

    # The worker builds reports: its links point at the address this run serves.
    var = log.parent / "var"
    worker = int((var / "celery-worker.pid").read_text())
    assert f"SITE_URL={base}".encode() in Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    # A dead worker (and beat) is started again.
    for name in ("celery-worker", "celery-beat"):
        dead = int((var / f"{name}.pid").read_text())
        os.kill(dead, signal.SIGKILL)
        wait_for(lambda name=name, dead=dead: _restarted(var / f"{name}.pid", dead), timeout=30)
    assert '"event": "process_restart", "process": "celery-worker"' in (var / "log" / "celery-worker.log").read_text()

    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    wait_for(lambda: not group_alive(process.pid), timeout=60)


def _restarted(pid_file: Path, dead: int) -> bool:
    pid = int(pid_file.read_text() or 0)
    return pid != dead and Path(f"/proc/{pid}").exists()
