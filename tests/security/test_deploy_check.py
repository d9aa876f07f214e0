"""Production mode passes Django's deployment checklist with no warning at all."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_production_settings_pass_check_deploy_without_warnings():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "METRICS_TOKEN", "SECURE_SSL_REDIRECT"}
    }
    env.update(
        IIT_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64)[:60],
        ALLOWED_HOSTS="iit.example.org",
        METRICS_TOKEN=secrets.token_hex(16),
        DJANGO_SETTINGS_MODULE="iit_service.settings",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no issues" in result.stdout, result.stdout[-2000:]
