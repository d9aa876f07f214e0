"""Log files that cannot be written (a full disk; the directory removed) never fail a request."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.common import http
from monitoring.observability.logging import CATEGORIES
from tests.faults.helpers import patient_ids, predict

pytestmark = pytest.mark.slow


def _requests_succeed(service: dict, web: str) -> None:
    one = {**service, "web": web}
    for pk in patient_ids(one, 3):
        assert predict(one, pk)[0] in (200, 201)
    assert http("GET", f"{web}/api/v1/patients/", token=service["token"])[0] == 200
    assert http("GET", f"{web}/no-such-page")[0] == 404  # an error-log line
    assert http("POST", f"{web}/api/v1/auth/token/", body={"username": "x", "password": "y"})[0] == 401  # security


def test_a_full_disk_under_the_log_files_does_not_fail_requests(service, tmp_path):
    log_dir = tmp_path / "full-log"
    log_dir.mkdir()
    for category in ("app", *CATEGORIES):
        os.symlink("/dev/full", log_dir / f"{category}.log")  # every write fails with ENOSPC
    web = service["stack"].start_web(name="web-full-log", env={"LOG_DIR": str(log_dir)})
    try:
        _requests_succeed(service, web)
        assert _writes_to_dev_full(service["stack"].processes["web-full-log"].pid)  # the failing files were used
    finally:
        service["stack"].stop("web-full-log")


def _writes_to_dev_full(master_pid: int) -> bool:
    """Some gunicorn worker holds /dev/full open: its log writes really went there (and failed)."""
    import psutil

    for worker in psutil.Process(master_pid).children():
        fds = Path(f"/proc/{worker.pid}/fd")
        if any(os.readlink(fd) == "/dev/full" for fd in fds.iterdir()):
            return True
    return False


def test_a_log_directory_removed_while_serving_does_not_fail_requests(service, tmp_path):
    log_dir = tmp_path / "vanishing-log"
    web = service["stack"].start_web(name="web-vanishing-log", env={"LOG_DIR": str(log_dir)})
    try:
        _requests_succeed(service, web)
        shutil.rmtree(log_dir)
        log_dir.write_text("a file where the log directory was")  # not even re-creatable
        _requests_succeed(service, web)
    finally:
        service["stack"].stop("web-vanishing-log")
