"""requirements.txt alone installs everything the web and the worker import.

A production install has requirements.txt only; the dev requirements (pytest and friends) pull in
more, and can hide a missing line. kombu's Redis transport, for one, imports ``packaging``, which
kombu declares only in its ``redis`` extra. This check builds nothing: a fresh interpreter starts
what the processes import with every installed distribution that requirements.txt would not install
hidden, as if it were absent. An optional import (DRF's of ``requests``) then fails as it would in
production and is handled; a needed one fails the start-up. CI also builds a real virtual environment
from requirements.txt alone and runs a job through a worker on Redis (scripts/check-requirements).
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# The web and the worker on the production path (Redis broker, results and cache), with the modules
# of distributions outside requirements.txt (argv[1]) hidden.
STARTUP = """
import json, sys

class Hidden:
    names = frozenset(json.loads(sys.argv[1]))
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed by requirements.txt)", name=name)

sys.meta_path.insert(0, Hidden())
import django
django.setup()
import iit_service.wsgi, gunicorn.app.wsgiapp
from iit_service.celery import app
app.loader.import_default_modules()
import celery.bin.worker, kombu.transport.redis, celery.backends.redis, django_redis.client
"""


def test_the_web_and_the_worker_start_with_only_what_requirements_txt_installs():
    result = _start_up(hidden=_modules_outside(_installed_by(_requirements(ROOT / "requirements.txt"))))
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_check_fails_when_a_needed_distribution_is_missing():
    result = _start_up(hidden=_modules_outside(_installed_by(_requirements(ROOT / "requirements.txt")) - {"packaging"}))
    assert result.returncode != 0 and "No module named 'packaging'" in result.stderr


def test_a_dependency_only_an_extra_declares_is_installed_with_the_extra_alone():
    assert "packaging" not in _installed_by([Requirement("kombu")])
    assert "packaging" in _installed_by([Requirement("kombu[redis]")])


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    requirements = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return [req for req in requirements if req.marker is None or req.marker.evaluate()]  # this platform's lines


def _installed_by(requirements: list[Requirement]) -> set[str]:
    """The distributions pip installs for ``requirements``: them and their dependencies, extras included."""
    todo = [(req.name, extra) for req in requirements for extra in ("", *req.extras)]
    seen: set[tuple[str, str]] = set()
    while todo:
        name, extra = todo.pop()
        if (canonicalize_name(name), extra) in seen:
            continue
        seen.add((canonicalize_name(name), extra))
        for dependency in map(Requirement, metadata.requires(name) or []):
            if dependency.marker is None or dependency.marker.evaluate({"extra": extra}):
                todo += [(dependency.name, e) for e in ("", *dependency.extras)]
    return {name for name, _ in seen}


def _modules_outside(installed: set[str]) -> list[str]:
    """Top-level modules that no distribution in ``installed`` provides."""
    providers = metadata.packages_distributions()
    return sorted(
        module
        for module, dists in providers.items()
        if not {canonicalize_name(dist) for dist in dists} & installed and module not in sys.stdlib_module_names
    )


def _start_up(*, hidden: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "iit_service.settings", "REDIS_URL": "redis://127.0.0.1:1/0"}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-c", STARTUP, json.dumps(hidden)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
