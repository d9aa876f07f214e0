"""Logs: one JSON object per line with its category and the request's id; rotation and retention."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from monitoring.observability.logging import SafeTimedRotatingFileHandler, logging_config
from monitoring.observability.middleware import ObservabilityMiddleware
from monitoring.observability.services import audit_rows_purge
from patients.models import AuditEvent
from tests.served import served

# The log files outlive test runs: ids unique to this run find only this run's lines.
_RUN = uuid.uuid4().hex[:8]
REQ_ACCESS_0001 = f"req-access-0001-{_RUN}"
REQ_DENIED_0001 = f"req-denied-0001-{_RUN}"
REQ_LOGIN_FAIL_1 = f"req-login-fail-1-{_RUN}"
REQ_SLOW_0001 = f"req-slow-0001-{_RUN}"
REQ_SLOW_PREDICTION = f"req-slow-prediction-{_RUN}"
REQ_SLOWQ_0001 = f"req-slowq-0001-{_RUN}"
REQ_SLOWQ_PREPARED = f"req-slowq-prepared-{_RUN}"
REQ_AUDIT_SERVED = f"req-audit-served-{_RUN}"


def lines_with(category: str, request_id: str) -> list[dict]:
    """This request's lines of one category's file (other tests share the files)."""
    path = Path(settings.LOG_DIR) / f"{category}.log"
    for handler in logging.getLogger(f"iit.{category}").handlers:
        handler.flush()
    parsed = [json.loads(line) for line in path.read_text().splitlines() if request_id in line]
    return [line for line in parsed if line.get("request_id") == request_id]


def test_each_request_writes_one_json_access_line_carrying_its_request_id(db):
    response = Client().get("/health/live", HTTP_X_REQUEST_ID=REQ_ACCESS_0001)
    assert response["X-Request-ID"] == REQ_ACCESS_0001
    [line] = lines_with("access", REQ_ACCESS_0001)
    assert line["category"] == "access"
    assert line["level"] == "INFO"
    assert line["endpoint"] == "health/live"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    dt.datetime.fromisoformat(line["timestamp"])


def test_a_request_without_an_id_gets_one_and_an_unsafe_id_is_replaced(db):
    generated = Client().get("/health/live")["X-Request-ID"]
    assert len(generated) == 32
    replaced = Client().get("/health/live", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert replaced != "bad id\nwith newline" and len(replaced) == 32


def test_a_denied_request_goes_to_the_security_log(db):
    with override_settings(METRICS_REQUIRE_AUTH=True, METRICS_TOKEN="t0ken"):
        Client().get("/metrics", HTTP_X_REQUEST_ID=REQ_DENIED_0001)
    events = {line["event"] for line in lines_with("security", REQ_DENIED_0001)}
    assert "access_denied" in events


def test_logins_and_failed_logins_go_to_the_security_log(db):
    get_user_model().objects.create_user(username="nurse", password="correct-horse-battery-staple")
    client = Client()
    client.post(
        "/admin/login/", {"username": "nurse", "password": "wrong"}, HTTP_X_REQUEST_ID=REQ_LOGIN_FAIL_1
    )  # fmt: skip
    client.login(username="nurse", password="correct-horse-battery-staple")
    [failed] = [line for line in lines_with("security", REQ_LOGIN_FAIL_1) if line["event"] == "login_failed"]
    assert failed["user"] == "nurse"
    assert "wrong" not in json.dumps(failed)


def test_slow_requests_go_to_the_performance_log(db):
    with override_settings(SLOW_REQUEST_SECONDS=0):
        Client().get("/health/live", HTTP_X_REQUEST_ID=REQ_SLOW_0001)
    [line] = lines_with("performance", REQ_SLOW_0001)
    assert line["event"] == "slow_request"
    assert line["category"] == "performance"


def test_slow_queries_go_to_the_database_log_without_their_parameters(db):
    with override_settings(SLOW_QUERY_SECONDS=0):
        Client().get("/health/db", HTTP_X_REQUEST_ID=REQ_SLOWQ_0001)
    lines = lines_with("db", REQ_SLOWQ_0001)
    assert lines and {line["category"] for line in lines} == {"db"}
    assert all(line["event"] == "slow_query" and "sql" in line for line in lines)


def test_a_prepared_statement_is_logged_as_its_sql_never_as_execute_with_its_parameters(api, facility):
    token = api._credentials["HTTP_AUTHORIZATION"].split()[1]
    with override_settings(SLOW_QUERY_SECONDS=0):
        api.get(f"/api/v1/facilities/{facility.pk}/", HTTP_X_REQUEST_ID=REQ_SLOWQ_PREPARED)
    lines = lines_with("db", REQ_SLOWQ_PREPARED)
    [auth] = [line for line in lines if "authtoken_token" in line["sql"]]  # the token look-up (prepared on PostgreSQL)
    assert auth["statement"] == "select" and auth["sql"].startswith("SELECT")
    assert not any(line["sql"].startswith("EXECUTE") or token in line["sql"] for line in lines)


@pytest.mark.django_db(transaction=True)  # as served: Django ends each request's database use when it closes
def test_as_served_the_log_lines_follow_the_response_with_the_requests_id(patient, clinician):
    token, _ = Token.objects.get_or_create(user=clinician)
    result, status, _ = served("GET", f"/api/v1/patients/{patient.pk}/", token=token.key, x_request_id=REQ_AUDIT_SERVED)
    assert status == "200 OK" and AuditEvent.objects.filter(request_id=REQ_AUDIT_SERVED).count() == 1

    def security_events() -> list[str]:
        return sorted(line["event"] for line in lines_with("security", REQ_AUDIT_SERVED))

    # The audit row is stored; the log lines wait for the close.
    assert security_events() == [] and lines_with("access", REQ_AUDIT_SERVED) == []
    result.close()
    assert security_events() == ["patient_data_access", "token_used"]
    [audit] = [line for line in lines_with("security", REQ_AUDIT_SERVED) if line["event"] == "patient_data_access"]
    assert audit["patient_id"] == patient.pk and audit["user"] == clinician.username
    [access] = lines_with("access", REQ_AUDIT_SERVED)
    assert access["status"] == 200 and access["user"] == clinician.username and access["duration_ms"] > 0


def test_files_rotate_daily_keeping_30_days_and_90_for_security():
    def rotation(category: str) -> SafeTimedRotatingFileHandler:
        [handler] = [
            h for h in logging.getLogger(f"iit.{category}").handlers if isinstance(h, SafeTimedRotatingFileHandler)
        ]
        return handler

    assert rotation("access").when == "MIDNIGHT" and rotation("access").backupCount == 30
    assert settings.APP_LOG_RETENTION_DAYS == 30
    assert rotation("security").backupCount == settings.AUDIT_LOG_RETENTION_DAYS == 90
    assert rotation("db").backupCount == rotation("error").backupCount == rotation("performance").backupCount == 30


def test_with_the_console_off_lines_go_to_the_files_only_unless_there_are_no_files(tmp_path):
    def root_handlers(log_dir: Path) -> list[str]:
        config = logging_config(
            log_dir=log_dir, level="INFO", app_retention_days=30, audit_retention_days=90, console=False
        )
        return config["root"]["handlers"]

    assert root_handlers(tmp_path / "log") == ["app_file"]  # what `make run` sets: a calm terminal
    (tmp_path / "a-file").write_text("")
    assert root_handlers(tmp_path / "a-file" / "log") == ["console"]  # never nowhere


def test_rollover_keeps_only_the_retained_days_and_never_overwrites_a_rotated_day(tmp_path):
    handler = SafeTimedRotatingFileHandler(tmp_path / "app.log", when="midnight", utc=True, backupCount=3, delay=True)
    for day in range(1, 7):
        (tmp_path / f"app.log.2026-01-0{day}").write_text(f"day {day}\n")
    (tmp_path / "app.log").write_text("today\n")
    previous_day_file = handler.rotation_filename(
        str(tmp_path / "app.log") + "." + handler._suffix_for(int(handler.rolloverAt - handler.interval))
    )
    Path(previous_day_file).write_text("rotated by another worker\n")
    handler.doRollover()
    handler.close()
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert len([name for name in remaining if name.startswith("app.log.")]) == 3
    assert Path(previous_day_file).read_text() == "rotated by another worker\n"


def test_an_unwritable_log_file_does_not_fail_the_request(db, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    handler = SafeTimedRotatingFileHandler(blocked / "access.log", when="midnight", utc=True, backupCount=1, delay=True)
    logger = logging.getLogger("iit.access")
    logger.addHandler(handler)
    try:
        assert Client().get("/health/live").status_code == 200
    finally:
        logger.removeHandler(handler)


def test_audit_rows_older_than_90_days_are_purged_in_batches(db):
    for _ in range(7):
        AuditEvent.objects.create(username="u", action="read", resource="patient")
    old = list(AuditEvent.objects.values_list("id", flat=True)[:5])
    AuditEvent.objects.filter(id__in=old).update(occurred_at=timezone.now() - dt.timedelta(days=91))
    AuditEvent.objects.filter(id__in=old[:1]).update(occurred_at=timezone.now() - dt.timedelta(days=89))
    assert audit_rows_purge(older_than_days=90, batch_size=2) == 4
    assert AuditEvent.objects.count() == 3
    assert audit_rows_purge() == 0


@pytest.mark.parametrize("name,category", [("iit.security", "security"), ("django.request", "error"), ("myapp", "app")])
def test_every_logger_maps_to_a_category(name, category):
    from monitoring.observability.logging import category_of

    assert category_of(name) == category


def test_a_slow_prediction_goes_to_the_performance_log_wherever_it_is_observed(settings):
    from monitoring.observability.logging import request_id_var
    from monitoring.observability.metrics import PREDICTION_DURATION

    settings.SLOW_PREDICTION_SECONDS = 1.0
    token = request_id_var.set(REQ_SLOW_PREDICTION)
    try:
        PREDICTION_DURATION.labels(mode="single").observe(0.2)
        PREDICTION_DURATION.labels(mode="single").observe(2.5)
    finally:
        request_id_var.reset(token)
    [line] = lines_with("performance", REQ_SLOW_PREDICTION)
    assert line["event"] == "slow_prediction"
    assert line["mode"] == "single"
    assert line["duration_ms"] == 2500.0


def _logged(caplog, *, at_least: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= at_least and r.name.startswith(("iit.", "django."))]


@pytest.mark.parametrize(
    ("path", "status", "exception"),
    [
        ("/admin/patients/auditevent/add/", 403, "PermissionDenied"),
        ("/admin/monitoring/console/reports/987654/", 404, "Http404"),
    ],
)
def test_an_admin_403_or_404_is_a_warning_without_traceback(db, caplog, path, status, exception):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="correct-horse-battery-staple"))
    with caplog.at_level(logging.INFO):
        assert client.get(path).status_code == status
    assert not _logged(caplog, at_least=logging.ERROR)
    [refused] = [r for r in caplog.records if getattr(r, "event", None) == "request_refused"]
    assert (refused.levelno, refused.exception, refused.exc_info) == (logging.WARNING, exception, None)


def test_a_crash_is_still_an_error_with_its_traceback(db, caplog):
    request = RequestFactory().get("/admin/")
    with caplog.at_level(logging.INFO):
        ObservabilityMiddleware(lambda request: None).process_exception(request, RuntimeError("boom"))
    [crash] = _logged(caplog, at_least=logging.ERROR)
    assert crash.event == "unhandled_exception" and crash.exc_info[0] is RuntimeError
