"""/health, /health/live and /health/db against the real database and cache.

Dead dependencies are real closed ports (nothing listens), not mocks.
"""

from __future__ import annotations

import socket

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings

from bench.common import wait_until
from iit_service.celery import app as celery_app
from monitoring.observability import health
from patients.models import Observation, Patient


def closed_port() -> int:
    """A local TCP port nothing listens on: bound then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_database() -> dict:
    return {
        **settings.DATABASES,
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "iit",
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(closed_port()),
            "OPTIONS": {"application_name": settings.DB_APPLICATION_NAME},
        },
    }


@pytest.fixture
def client(db) -> Client:
    return Client()


@pytest.fixture
def model_loaded(db, settings, tmp_path, trained_once):
    """A real model trained on a small generated cohort (once per session) and activated."""
    from predictions import registry
    from tests.trained import write_cohort

    settings.MODEL_DIR = tmp_path / "models"
    settings.MODEL_VERSION_CHECK_SECONDS = 0
    registry.forget_loaded_model()
    write_cohort()
    trained_once.register()
    yield
    registry.forget_loaded_model()


def test_it_is_healthy_with_200_when_every_dependency_answers(client, model_loaded):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() | {"timestamp": None} == {
        "status": "healthy",
        "timestamp": None,
        "database_connected": True,
        "redis_connected": True,
        "model_loaded": True,
        "celery_workers": None,
        "beat_last_tick": None,
        "beat_stale": None,
    }


def test_it_is_degraded_but_serving_with_200_when_redis_is_down(client, model_loaded):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/3"):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["redis_connected"] is False
    assert response.json()["model_loaded"] is True


def test_it_is_unhealthy_when_the_active_model_artifact_is_missing(client, model_loaded, settings):
    from predictions import registry

    for artifact in (settings.MODEL_DIR).iterdir():
        artifact.unlink()
    registry.forget_loaded_model()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["model_loaded"] is False


def test_it_reports_the_guide_fields_and_the_celery_ones_beside_them(client):
    body = client.get("/health").json()
    guide = {"status", "timestamp", "database_connected", "redis_connected", "model_loaded"}
    assert set(body) == guide | {"celery_workers", "beat_last_tick", "beat_stale"}
    assert body["timestamp"].endswith("Z")


def test_it_is_unhealthy_with_503_when_no_model_is_loaded(client):
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json() | {"timestamp": None} == {
        "status": "unhealthy",
        "timestamp": None,
        "database_connected": True,
        "redis_connected": True,
        "model_loaded": False,
        "celery_workers": None,
        "beat_last_tick": None,
        "beat_stale": None,
    }


def test_it_reports_redis_down_when_redis_listens_nowhere(client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/3"):
        body = client.get("/health").json()
    assert body["redis_connected"] is False
    assert body["database_connected"] is True


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_it_is_unhealthy_with_503_when_the_database_is_unreachable(client):
    with override_settings(DATABASES=unreachable_database()):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database_connected"] is False
    assert body["model_loaded"] is False


def test_without_redis_url_the_embedded_cache_answers_for_redis(client):
    with override_settings(REDIS_URL=""):
        assert client.get("/health").json()["redis_connected"] is True


def test_the_database_probe_gives_up_after_the_configured_timeout():
    postgres = {"ENGINE": "django.db.backends.postgresql", "OPTIONS": {"connect_timeout": 30}}
    probe = health.probe_database_settings(postgres, timeout=1.5)
    assert probe["OPTIONS"]["connect_timeout"] == 2  # libpq's floor
    assert probe["OPTIONS"]["options"] == "-c statement_timeout=1500"
    sqlite = health.probe_database_settings(
        {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 20}}, timeout=1.5
    )
    assert sqlite["OPTIONS"]["timeout"] == 1.5


def test_the_redis_probe_gives_up_after_the_configured_timeout():
    with override_settings(REDIS_URL="redis://127.0.0.1:6379/3"):
        client = health.redis_client(timeout=settings.HEALTH_PROBE_TIMEOUT)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == settings.HEALTH_PROBE_TIMEOUT
    assert 0.1 <= settings.HEALTH_PROBE_TIMEOUT <= 2


def test_liveness_touches_no_dependency(client, django_assert_num_queries):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/3"), django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_database_health_has_the_guide_shape_and_counts_rows(client, patient):
    Observation.objects.create(
        patient=patient,
        facility=patient.facility,
        concept="weight",
        observed_at="2025-01-01T00:00:00Z",
        value_numeric=60,
    )
    response = client.get("/health/db")
    assert response.status_code == 200
    body = response.json()
    assert body["database_status"] == "healthy"
    pool = body["connection_pool"]
    assert pool["total"] == settings.DB_POOL_MAX
    assert pool["active"] + pool["idle"] == pool["total"]
    assert set(body["table_stats"]) == {"patients", "predictions", "observations"}
    if connection.vendor != "postgresql":
        assert body["table_stats"] == {"patients": Patient.objects.count(), "predictions": 0, "observations": 1}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_database_health_answers_503_when_the_database_is_unreachable(client):
    with override_settings(DATABASES=unreachable_database()):
        response = client.get("/health/db")
    assert response.status_code == 503
    assert response.json()["database_status"] == "unhealthy"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: pg_stat_activity by application_name")
def test_database_health_on_postgresql_counts_the_service_connections_by_application_name(client):
    import psycopg2

    params = connection.get_connection_params()
    params["application_name"] = settings.DB_APPLICATION_NAME
    extra = psycopg2.connect(**params)  # a second connection of "the service", idle
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name')")
            assert cursor.fetchone()[0] == settings.DB_APPLICATION_NAME
        body = client.get("/health/db").json()
    finally:
        extra.close()
    assert body["vendor"] == "postgresql"
    assert body["estimated"] is True
    assert body["connection_pool"]["open"] >= 2
    assert body["connection_pool"]["active"] >= 1  # the test's own connection, in its transaction


def test_a_cache_that_fails_is_reported_down_not_a_server_error(client, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    broken = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(blocked / "c")}
    }
    with override_settings(REDIS_URL="", CACHES=broken):
        response = client.get("/health")
    assert response.status_code == 503  # no model here; the point is the answer, not a 500
    assert response.json()["redis_connected"] is False


# --- Celery workers and beat --------------------------------------------------------------


@pytest.fixture
def celery_checked(settings):
    settings.HEALTH_CELERY = True
    settings.HEALTH_CELERY_PING_TIMEOUT = 2.0  # the filesystem broker polls every second, on both sides


@pytest.mark.django_db(transaction=True)  # the worker runs in a thread of this process, with its own connection
def test_it_names_the_workers_that_answer_a_ping_and_stays_healthy(client, model_loaded, celery_checked, worker):
    # A ping is a broadcast: only a worker already listening hears it, and a ping an earlier test left running
    # answers for every request until it ends. Both settled, /health's own ping finds the worker.
    if health._ping_running is not None:
        health._ping_running.result(timeout=30)
    wait_until(lambda: celery_app.control.ping(timeout=1), timeout=60, what="the worker to answer a ping")
    cache.clear()
    body = client.get("/health").json()
    assert body["status"] == "healthy" and len(body["celery_workers"]) == 1, body
    assert body["celery_workers"][0].startswith("celery@") or "@" in body["celery_workers"][0]


def test_it_is_degraded_when_no_worker_answers_and_keeps_that_answer_briefly(client, model_loaded, celery_checked):

    body = client.get("/health").json()
    assert body["status"] == "degraded" and body["celery_workers"] == [], body
    assert body["database_connected"] and body["redis_connected"] and body["model_loaded"]
    health._ping_running.result(timeout=10)  # the ping may outlast the request's wait; it then stores its answer
    assert cache.get(health.WORKERS_KEY) == {"workers": []}  # what the probes read for HEALTH_CELERY_CACHE_SECONDS


def test_beat_is_stale_when_its_newest_run_is_older_than_the_setting(db, settings, celery_checked):
    import datetime as dt

    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="system", task="x", interval=every, enabled=True)
    now = timezone.now()
    for age, stale in ((60, False), (settings.HEALTH_BEAT_STALE_SECONDS + 60, True)):
        PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=now - dt.timedelta(seconds=age))
        last_tick, is_stale = health.beat_state(now=now)
        assert is_stale is stale and last_tick is not None
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)
    assert health.beat_state(now=now) == (None, None)  # nothing for beat to do: not checked


def test_schedules_never_run_long_after_they_were_written_mean_beat_is_not_running(db, settings, celery_checked):
    import datetime as dt

    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="system", task="x", interval=every, enabled=True)
    assert health.beat_state() == (None, None)  # just written: beat has not had its chance yet
    written = timezone.now() - dt.timedelta(seconds=settings.HEALTH_BEAT_STALE_SECONDS + 60)
    PeriodicTasks.objects.filter(ident=1).update(last_update=written)
    assert health.beat_state() == (None, True)


def test_a_stale_beat_makes_health_degraded_though_a_worker_answers(client, model_loaded, celery_checked):
    import datetime as dt

    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="system", task="x", interval=every, enabled=True,
                                last_run_at=timezone.now() - dt.timedelta(hours=1))  # fmt: skip
    cache.set(health.WORKERS_KEY, {"workers": ["celery@w1"]})  # the last ping's answer, as the probe keeps it
    body = client.get("/health").json()
    assert body["status"] == "degraded" and body["beat_stale"] is True and body["celery_workers"], body


def test_the_console_shows_the_ping_answer_at_once_never_pinging(client, staff, celery_checked):
    from django.urls import reverse

    client.force_login(staff)
    page = client.get(reverse("admin:monitoring_console_overview")).content.decode()
    assert "none answering a ping" in page and "pinging" not in page
    cache.set(health.WORKERS_KEY, {"workers": ["celery@w1"]})
    assert "celery@w1" in client.get(reverse("admin:monitoring_console_overview")).content.decode()
