"""The service's Celery app with one more task that keeps a worker slot busy for a while.

Scaling tests start a real worker on this module (``celery -A tests.monitoring.napping worker``):
a task that sleeps is the plainest way to hold a slot busy for as long as a test reads the metrics.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from iit_service.celery import app

__all__ = ["app", "nap"]


@app.task(name="tests.nap")
def nap(seconds: float, started_in: str = "") -> None:
    """Sleep; first leave a file named after this process's id in ``started_in``, if given."""
    if started_in:
        (Path(started_in) / str(os.getpid())).touch()
    time.sleep(seconds)
