"""iit_service/gunicorn_conf.py: the settings gunicorn reads, loaded as gunicorn loads them."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

import pytest

from iit_service.db_wait import bound_database_waits

CONF = Path(__file__).resolve().parents[2] / "iit_service" / "gunicorn_conf.py"


@pytest.fixture
def conf(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "multiproc"))
    return runpy.run_path(str(CONF))


def test_a_booted_worker_freezes_what_it_loaded_out_of_the_collectors_walks(conf):
    try:
        conf["post_worker_init"](None)
        assert gc.get_freeze_count() > 10_000  # Django, DRF, pandas, XGBoost...
    finally:
        gc.unfreeze()
        bound_database_waits(0)  # the worker's bound on PostgreSQL waits is process-wide: not for later tests
