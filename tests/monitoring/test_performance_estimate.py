"""Estimated performance of a score_all snapshot: one figure on /metrics, in the API and on the console.

The shared test model over its generated cohort, a ``score_all`` snapshot of it, then the
``performance_estimate`` job as an operator runs it.  Whether the estimate comes true needs outcomes
in numbers a test cannot afford (the realised AUC of ~100 interruptions varies by ~0.025 on its own):
``bench/bench_estimate.py`` checks it against the AUC realised on a 6,000-patient cohort.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from monitoring.evaluation import estimate as cbpe
from monitoring.evaluation.jobs import job_run
from monitoring.models import AucEvaluation, JobRun, PerformanceEstimate
from predictions.models import Prediction
from tests.monitoring.test_metrics import scrape
from tests.predictions.conftest import today


def test_a_snapshot_estimated_once_is_not_estimated_again(scored_tonight):
    first = job_run(name="performance_estimate")
    second = job_run(name="performance_estimate")
    assert first.figures["status"] == "ok" and second.figures == {"status": "no_snapshot"}
    assert PerformanceEstimate.objects.count() == 1 and "already estimated" in second.summary


def test_the_job_estimates_the_patients_in_care_and_metrics_api_and_console_show_that_figure(
    scored_tonight, api, client, staff
):
    version, snapshot = scored_tonight
    call_command("run_monitoring_job", "performance_estimate")
    run = JobRun.objects.get(job="performance_estimate")
    assert run.status == "succeeded" and run.figures["reliable"], run.summary
    estimate = PerformanceEstimate.objects.get(snapshot=snapshot, status="ok")
    night = timezone.localdate(snapshot.started_at)
    in_care = Prediction.objects.filter(batch_job=snapshot, appointment_date__gte=night)
    scores = np.array(list(in_care.values_list("score", flat=True)))
    assert estimate.n_rows == scores.size < sum(snapshot.result["risk_levels"].values())  # the late are left out
    assert estimate.roc_auc == pytest.approx(cbpe.estimate(scores, {}).roc_auc.value)
    assert estimate.roc_auc_lower < estimate.roc_auc < estimate.roc_auc_upper
    assert 0 < estimate.capture_very_high < estimate.capture_high_tiers < 1
    on_metrics = scrape(client)["iit_model_estimated_auc_score"].samples[0]
    assert on_metrics.labels == {"model_version": version.version}
    in_api = api.get("/api/v1/models/active/").json()["monitoring"]["estimated_performance"]
    client.force_login(staff)
    console = client.get(reverse("admin:monitoring_console_model")).content.decode()
    assert on_metrics.value == in_api["roc_auc"] == estimate.roc_auc
    assert f"{estimate.roc_auc:.3f}" in console and "Estimated performance" in console


def test_an_estimate_after_calibration_drift_is_marked_unreliable_and_the_console_says_why(
    scored_tonight, client, staff
):
    version, snapshot = scored_tonight
    AucEvaluation.objects.create(
        model_version=version,
        evaluated_at=timezone.now(),
        window_start=today() - dt.timedelta(days=56),
        window_end=today() - dt.timedelta(days=29),
        status="ok",
        n_labelled=900,
        n_events=120,
        roc_auc=0.78,
        observed_expected=1.42,
    )
    call_command("run_monitoring_job", "performance_estimate")
    estimate = PerformanceEstimate.objects.get(snapshot=snapshot)
    assert not estimate.reliable and "observed / expected 1.42" in estimate.unreliable_reason
    client.force_login(staff)
    console = client.get(reverse("admin:monitoring_console_model")).content.decode()
    assert "Unreliable" in console and "observed / expected 1.42" in console
    assert scrape(client)["iit_model_estimate_reliable"].samples[0].value == 0
