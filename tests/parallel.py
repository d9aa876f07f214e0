"""Loaded before Django (``-p tests.parallel`` in pyproject.toml): each pytest-xdist worker its own Redis and var/.

pytest-django gives each worker (``gw0``, ``gw1``, ...) its own test database. The other state the service shares
through its environment is chosen here, before the settings module reads it, so the settings, the Celery app and
every process a test starts agree on it:

* ``REDIS_URL``: worker N uses Redis database <the URL's database> + N. The cache's ``clear()`` is a FLUSHDB and the
  Celery broker keeps its queues there: two workers on one database would empty and steal each other's.
* ``IIT_VAR_DIR`` (logs, counter files, models, the filesystem broker): ``var/pytest-gwN`` beside the usual one.

Without xdist (``PYTEST_XDIST_WORKER`` unset) nothing changes.
"""

import os
import urllib.parse
from pathlib import Path

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # set by xdist before a worker loads its plugins


def redis_url_of_worker(url: str, index: int) -> str:
    parsed = urllib.parse.urlparse(url)
    database = int(parsed.path.lstrip("/") or 0) + index
    return parsed._replace(path=f"/{database}").geturl()


if WORKER.startswith("gw"):
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url_of_worker(os.environ["REDIS_URL"], int(WORKER[2:]))
    var = Path(os.environ.get("IIT_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    os.environ["IIT_VAR_DIR"] = str(var / f"pytest-{WORKER}")
