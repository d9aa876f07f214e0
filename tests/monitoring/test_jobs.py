from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring.evaluation.jobs import JOBS, Every, JobResult, JobSpec, UnknownJob, job_run, retention_purge
from monitoring.models import AucEvaluation, DriftEvaluation, HealthReport, JobRun, MetricSample
from monitoring.observability import counters
from monitoring.observability.metrics import (
    API_CLIENT_ERRORS,
    API_ERRORS,
    PREDICTION_CACHE_REQUESTS,
    PREDICTION_DURATION,
)
from monitoring.tasks import run_job
from patients.models import AuditEvent
from tests.monitoring import evaluation_data

SYSTEM_SAMPLES = {"cpu_percent", "memory_used_bytes", "memory_total_bytes", "memory_percent"}


@pytest.fixture
def own_counters(settings):
    """Read this process's counters, as the embedded default without a multiprocess directory does."""
    settings.MONITORING_COUNTER_DIRS = []
    settings.REDIS_URL = ""


def test_the_registry_declares_at_least_the_jobs_the_issue_names():
    assert {"outcomes", "auc", "score_all", "drift", "system", "alerts", "health_report", "retention"} <= set(JOBS)


@pytest.mark.django_db
def test_run_monitoring_job_records_a_successful_run_and_prints_its_figures(capsys, own_counters):
    call_command("run_monitoring_job", "system")

    run = JobRun.objects.get()
    assert (run.job, run.trigger, run.status) == ("system", "manual", JobRun.Status.SUCCEEDED)
    assert run.finished_at >= run.started_at
    assert SYSTEM_SAMPLES <= set(run.figures["samples"])
    output = capsys.readouterr().out
    assert "system succeeded" in output and '"memory_total_bytes"' in output


@pytest.mark.django_db
def test_a_failing_job_is_recorded_as_failed_with_its_traceback(facility, capsys):
    version = evaluation_data.model_version(np.random.default_rng(0), n_reference=500)
    version.reference_profile = {}  # a version trained without a profile cannot be compared
    version.save()

    with pytest.raises(CommandError, match="drift failed"):
        call_command("run_monitoring_job", "drift")

    run = JobRun.objects.get()
    assert run.status == JobRun.Status.FAILED
    assert run.summary.startswith("ValueError: model version v-test has no reference profile")
    assert "Traceback" in run.error and run.finished_at is not None


@pytest.mark.django_db
def test_an_unknown_job_is_refused():
    with pytest.raises(UnknownJob):
        job_run(name="no-such-job")
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_the_celery_task_runs_a_job_and_returns_its_run(own_counters):
    run_id = run_job.apply(kwargs={"name": "system"}).get()
    run = JobRun.objects.get(pk=run_id)
    assert (run.job, run.trigger, run.status) == ("system", "beat", JobRun.Status.SUCCEEDED)


@pytest.mark.django_db
def test_the_celery_task_records_a_failure_instead_of_raising(facility):
    version = evaluation_data.model_version(np.random.default_rng(0), n_reference=500)
    version.reference_profile = {}
    version.save()
    run_id = run_job.apply(kwargs={"name": "drift"}).get()
    assert JobRun.objects.get(pk=run_id).status == JobRun.Status.FAILED


@pytest.mark.django_db
def test_model_jobs_through_the_task_store_their_evaluations(facility):
    rng = np.random.default_rng(1)
    version = evaluation_data.model_version(rng, n_reference=2_000)
    people = evaluation_data.patients(facility, 600)
    columns = evaluation_data.feature_columns(rng, 600)
    scores = rng.beta(2, 5, 600)
    evaluation_data.store_snapshot(version, people, scores=scores, columns=columns, finished_at=timezone.now())

    drift_run = JobRun.objects.get(pk=run_job.apply(kwargs={"name": "drift"}).get())
    auc_run = JobRun.objects.get(pk=run_job.apply(kwargs={"name": "auc"}).get())

    assert drift_run.status == auc_run.status == JobRun.Status.SUCCEEDED
    assert drift_run.figures["n_rows"] == 600 and drift_run.figures["status"] == "ok"
    assert DriftEvaluation.objects.get().pk == drift_run.figures["evaluation"]
    assert auc_run.figures["status"] == AucEvaluation.Status.INSUFFICIENT_LABELS  # nothing resolved yet
    assert auc_run.summary.startswith("insufficient labels")


@pytest.mark.django_db
def test_model_jobs_without_an_active_version_succeed_and_say_so():
    for name in ("auc", "drift"):
        run = job_run(name=name)
        assert (run.status, run.summary) == (JobRun.Status.SUCCEEDED, "no active model version")
    run = job_run(name="score_all")
    assert (run.status, run.summary) == (JobRun.Status.SUCCEEDED, "nothing scored: no active model version")


@pytest.mark.django_db
def test_the_drift_job_says_when_there_is_no_snapshot_to_compare(facility):
    evaluation_data.model_version(np.random.default_rng(2), n_reference=2_000)
    run = job_run(name="drift")
    assert run.status == JobRun.Status.SUCCEEDED and run.figures == {"status": "no_snapshot"}
    assert (
        run.summary
        == "no drift evaluation: model version v-test has no full score_all snapshot yet: run the score_all job"
    )
    assert not DriftEvaluation.objects.exists()


@pytest.mark.django_db
def test_the_alerts_and_health_report_jobs_run_the_alerting_apps_entry_points(settings, own_counters):
    settings.OPS_EMAILS = []
    job_run(name="system")  # gives the evaluator samples to read
    alerts = job_run(name="alerts")
    report = job_run(name="health_report")
    assert alerts.status == JobRun.Status.SUCCEEDED, alerts.error
    assert report.status == JobRun.Status.SUCCEEDED, report.error
    assert HealthReport.objects.get().pk == report.figures["report"]


@pytest.mark.django_db
def test_the_rescan_job_runs_the_prediction_apps_rescan():
    run = job_run(name="rescan")
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    assert run.figures["changed_patients"] == 0


# --- system ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_system_job_turns_counter_increases_into_rates_and_p95s(own_counters):
    first = job_run(name="system")
    JobRun.objects.filter(pk=first.pk).update(started_at=first.started_at - dt.timedelta(minutes=5))
    API_ERRORS.labels(endpoint="/api/v1/x/", method="GET", status="503", error="database_unavailable").inc(12)
    API_CLIENT_ERRORS.labels(endpoint="/api/v1/x/", method="GET", status="404", error="not_found").inc(30)
    PREDICTION_CACHE_REQUESTS.labels(result="hit").inc(3)
    PREDICTION_CACHE_REQUESTS.labels(result="miss").inc(1)
    for _ in range(100):
        PREDICTION_DURATION.labels(mode="single").observe(0.004)  # every one in the (0.0025, 0.005] bucket

    second = job_run(name="system")

    elapsed = second.figures["window_seconds"]
    assert elapsed == pytest.approx((second.started_at - first.started_at).total_seconds() + 300, abs=1)
    samples = {s.name: s.value for s in MetricSample.objects.filter(recorded_at__gte=second.started_at)}
    assert samples["error_rate_per_hour"] == pytest.approx(12 * 3600 / elapsed)
    assert samples["client_error_rate_per_hour"] == pytest.approx(30 * 3600 / elapsed)
    assert samples["cache_hit_ratio"] == pytest.approx(0.75)
    assert 0.0025 < samples["prediction_p95_seconds"] <= 0.005
    assert 0 <= samples["cpu_percent"] <= 100
    assert samples["memory_percent"] == pytest.approx(
        100 * samples["memory_used_bytes"] / samples["memory_total_bytes"]
    )


@pytest.mark.django_db
def test_the_system_job_sums_the_counters_of_other_processes_from_their_multiprocess_files(settings, tmp_path):
    writer = textwrap.dedent(
        """
        from prometheus_client import Counter, Histogram
        errors = Counter("iit_api_errors_total", "", ["endpoint", "method", "status", "error"])
        client_errors = Counter("iit_api_client_errors_total", "", ["endpoint", "method", "status", "error"])
        cache = Counter("iit_prediction_cache_requests_total", "", ["result"])
        latency = Histogram("iit_db_query_duration_seconds", "", ["vendor", "statement"], buckets=(0.1, 1.0, 3.0))
        errors.labels("/a/", "GET", "500", "server_error").inc(7)
        client_errors.labels("/a/", "GET", "404", "not_found").inc(3)
        cache.labels("hit").inc(9)
        cache.labels("miss").inc(1)
        for _ in range(10):
            latency.labels("postgresql", "select").observe(2.0)
        """
    )
    for name in ("web", "worker"):
        directory = tmp_path / name
        directory.mkdir()
        env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", writer], env=env, check=True)
    settings.MONITORING_COUNTER_DIRS = [str(tmp_path / "web"), str(tmp_path / "worker"), str(tmp_path / "missing")]

    run = job_run(name="system")

    totals = run.figures["counters"]
    assert totals["errors"] == 14
    assert totals["client_errors"] == 6
    assert totals["cache"] == {"source": "counters", "hit": 18, "miss": 2}
    samples = run.figures["samples"]
    assert samples["cache_hit_ratio"] == pytest.approx(0.9)
    assert 1.0 < samples["db_query_p95_seconds"] <= 3.0


def test_histogram_quantile_interpolates_within_the_bucket_as_prometheus_does():
    buckets = {"0.1": 50.0, "0.5": 90.0, "1.0": 100.0, "+Inf": 100.0}
    assert counters.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert counters.histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    assert counters.histogram_quantile(0.95, {"1.0": 0.0, "+Inf": 10.0}) == 1.0  # beyond the last bound
    assert counters.histogram_quantile(0.95, {"1.0": 0.0, "+Inf": 0.0}) is None


def test_a_counter_that_went_down_counts_from_its_restart():
    assert counters.increase(5.0, 20.0) == 5.0
    assert counters.bucket_increase({"1": 2.0, "+Inf": 3.0}, {"1": 4.0, "+Inf": 5.0}) == {"1": 2.0, "+Inf": 3.0}
    assert counters.bucket_increase({"1": 6.0, "+Inf": 9.0}, {"1": 4.0, "+Inf": 5.0}) == {"1": 2.0, "+Inf": 4.0}


# --- retention -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retention_purges_old_audit_events_samples_and_frequent_job_runs(settings):
    settings.AUDIT_LOG_RETENTION_DAYS = 90
    settings.METRIC_SAMPLE_RETENTION_DAYS = 90
    now = timezone.now()
    old, recent = now - dt.timedelta(days=91), now - dt.timedelta(days=89)
    AuditEvent.objects.bulk_create(AuditEvent(username="u", action="read", resource="patient") for _ in range(7))
    AuditEvent.objects.filter(pk__in=AuditEvent.objects.values_list("pk", flat=True)[:5]).update(occurred_at=old)
    MetricSample.objects.bulk_create(
        [MetricSample(name="cpu_percent", value=1, recorded_at=when) for when in (old, old, recent)]
    )
    for job, started in (("system", now - dt.timedelta(days=8)), ("system", now), ("auc", now - dt.timedelta(days=8))):
        JobRun.objects.create(job=job, started_at=started, status=JobRun.Status.SUCCEEDED)

    purged = retention_purge(now=now)

    assert purged == {"audit_events": 5, "metric_samples": 2, "job_runs": 1}
    assert AuditEvent.objects.count() == 2
    assert list(JobRun.objects.order_by("job").values_list("job", flat=True)) == ["auc", "system"]


@pytest.mark.django_db
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL): its keyspace hit and miss stats")
def test_without_counter_files_the_cache_hit_ratio_comes_from_redis_keyspace_stats(settings):
    settings.MONITORING_COUNTER_DIRS = []
    first = job_run(name="system")
    cache.set("d1-hit-ratio", 1)
    for _ in range(3):
        assert cache.get("d1-hit-ratio") == 1
    assert cache.get("d1-absent") is None

    second = job_run(name="system")

    before, after = first.figures["counters"]["cache"], second.figures["counters"]["cache"]
    assert before["source"] == after["source"] == "redis"
    assert after["hit"] - before["hit"] >= 3 and after["miss"] - before["miss"] >= 1
    assert 0 < second.figures["samples"]["cache_hit_ratio"] < 1


@pytest.mark.django_db
def test_a_run_left_running_by_a_dead_process_is_closed_as_failed_by_the_next_run(own_counters):
    now = timezone.now()
    stale = JobRun.objects.create(job="system", started_at=now - dt.timedelta(hours=1))
    recent = JobRun.objects.create(job="system", started_at=now - dt.timedelta(seconds=5))

    job_run(name="system")

    stale.refresh_from_db()
    recent.refresh_from_db()
    assert stale.status == JobRun.Status.FAILED and stale.summary.startswith("abandoned")
    assert recent.status == JobRun.Status.RUNNING  # may still be running in another worker


@pytest.mark.django_db
def test_figures_that_json_cannot_hold_are_stored_as_text(monkeypatch):
    def odd_figures():
        return JobResult("done", {"count": np.int64(3), "day": dt.date(2026, 1, 2)})

    monkeypatch.setitem(JOBS, "odd", JobSpec(odd_figures, Every(60), "figures from another app"))

    run = job_run(name="odd")

    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.figures == {"count": "3", "day": "2026-01-02"}
