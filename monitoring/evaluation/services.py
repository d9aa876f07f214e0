"""Writes of model evaluation: AUC over resolved predictions and drift of recent ones, as evaluation rows."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from django.conf import settings
from django.utils import timezone

from monitoring.evaluation import auc, drift, estimate, multivariate, selectors
from monitoring.models import AucEvaluation, DriftEvaluation, PerformanceEstimate
from predictions.models import ModelVersion
from predictions.tiers import HIGH_TIERS, RiskLevel
from predictions.timeline import IIT_GRACE_DAYS

log = logging.getLogger("iit.monitoring")

# An appointment's outcome is known 28 days after it (PEPFAR's IIT definition, the label's grace).
OUTCOME_HORIZON_DAYS = IIT_GRACE_DAYS


# --- AUC --------------------------------------------------------------------


def auc_evaluation_create(*, today: dt.date | None = None, window_days: int | None = None) -> AucEvaluation | None:
    """Evaluate the active version on the resolved predictions of the last ``window_days`` of appointments.

    The window ends at ``today`` − 28 days: later appointments cannot have
    an outcome yet.  Returns None when no version is active.
    """
    version = selectors.model_version_active()
    if version is None:
        return None
    today = today or timezone.localdate()
    window_days = window_days or settings.MONITORING_AUC_WINDOW_DAYS
    window_end = today - dt.timedelta(days=OUTCOME_HORIZON_DAYS)
    window_start = window_end - dt.timedelta(days=window_days - 1)
    window = selectors.labelled_window(version=version, start=window_start, end=window_end)
    overall = auc.evaluate(window.y, window.score, min_events=settings.MONITORING_AUC_MIN_EVENTS)
    segments = auc.by_segment(
        window.y,
        window.score,
        {
            "facility": window.facility,
            "sex": window.sex,
            "age_band": auc.age_band(window.age_years),
            "art_tenure": auc.art_tenure(window.art_months),
        },
        min_events=settings.MONITORING_AUC_SEGMENT_MIN_EVENTS,
    )
    return AucEvaluation.objects.create(
        model_version=version,
        evaluated_at=timezone.now(),
        window_start=window_start,
        window_end=window_end,
        segments=segments,
        **overall.as_dict(),
    )


def auc_history_backfill(
    *, weeks: int, today: dt.date | None = None, window_days: int | None = None
) -> list[AucEvaluation]:
    """One AUC evaluation of the active version per week up to ``today`` (default: its training date), dated that week.

    Each is the monitoring job's own evaluation (``auc_evaluation_create``) as of that week.

    Run after ``predictions.services.predictions_backfill`` and outcome resolution (the
    ``backfill_predictions`` command does all three) so the console's AUC-over-time chart starts
    with history instead of one point weeks from now.  Weeks whose window reaches before the
    validation window, or already evaluated by an earlier backfill, are skipped; with no active
    version there is nothing to evaluate.
    """
    version = selectors.model_version_active()
    if version is None or version.validation_window_start is None:
        return []
    today = today or version.training_as_of
    window_days = window_days or settings.MONITORING_AUC_WINDOW_DAYS
    evaluations: list[AucEvaluation] = []
    for k in reversed(range(weeks)):
        as_of = today - dt.timedelta(weeks=k)
        if as_of - dt.timedelta(days=OUTCOME_HORIZON_DAYS + window_days - 1) < version.validation_window_start:
            continue
        moment = dt.datetime.combine(as_of, dt.time(12), tzinfo=dt.UTC)
        if AucEvaluation.objects.filter(model_version=version, evaluated_at=moment).exists():
            continue  # evaluated by an earlier backfill
        evaluation = auc_evaluation_create(today=as_of, window_days=window_days)
        if evaluation is None:  # the active version changed under the backfill
            break
        AucEvaluation.objects.filter(pk=evaluation.pk).update(evaluated_at=moment)
        evaluations.append(evaluation)
    return evaluations


def auc_summary(evaluation: AucEvaluation) -> str:
    if evaluation.status != AucEvaluation.Status.OK:
        return f"insufficient labels: {evaluation.n_events} events in {evaluation.n_labelled} labelled"
    return (
        f"ROC-AUC {evaluation.roc_auc:.3f} ({evaluation.roc_auc_lower:.3f}-{evaluation.roc_auc_upper:.3f}), "
        f"{evaluation.n_events} events in {evaluation.n_labelled} labelled"
    )


def auc_figures(evaluation: AucEvaluation) -> dict:
    fields = ("status", "n_labelled", "n_events", "roc_auc", "roc_auc_lower", "roc_auc_upper", "pr_auc", "brier")
    figures = {name: getattr(evaluation, name) for name in fields}
    figures.update(evaluation=evaluation.pk, model_version=evaluation.model_version.version)
    return figures


# --- Drift --------------------------------------------------------------------

_compiled_references: dict[tuple, drift.Reference] = {}


def _reference_for(version: ModelVersion) -> drift.Reference:
    """The version's profile compiled to arrays once per process (profiles are frozen at training).

    Keyed by name and training time too: a primary key alone can come back
    for another version after a delete (SQLite reuses them).
    """
    key = (version.pk, version.version, version.trained_at)
    if key not in _compiled_references:
        _compiled_references[key] = drift.compile_reference(version.reference_profile)
    return _compiled_references[key]


def _persistent_state(window_drifted: bool, previous: DriftEvaluation | None) -> bool:
    """Drift is declared after two drifting windows in a row and cleared after two clean ones."""
    if previous is None:
        return False
    if window_drifted == previous.window_drifted:
        return window_drifted
    return previous.drift_detected


class NoSnapshot(Exception):  # noqa: N818 the name says what is missing
    """The active version has no full score_all snapshot that has not been evaluated yet (``str``: which)."""


def drift_evaluation_create(*, now: dt.datetime | None = None) -> DriftEvaluation | None:
    """Compare the active version's latest full score_all snapshot with its reference profile.

    The snapshot holds every at-risk patient scored on one night (``predictions_score_all``) and the
    reference the same population at training, so the two differ only where the patients did.  Returns
    None when no version is active; raises NoSnapshot when it has no snapshot yet, or none newer than
    the last one evaluated (an evaluation counts towards persistence once per snapshot).
    """
    version = selectors.model_version_active()
    if version is None:
        return None
    if not version.reference_profile:
        raise ValueError(f"model version {version.version} has no reference profile to compare with")
    snapshot = selectors.score_all_snapshot_latest(version=version)
    if snapshot is None:
        raise NoSnapshot(f"model version {version.version} has no full score_all snapshot yet: run the score_all job")
    if DriftEvaluation.objects.filter(model_version=version, snapshot=snapshot).exists():
        raise NoSnapshot(f"the latest score_all snapshot ({snapshot.finished_at:%Y-%m-%d %H:%M}) is already evaluated")
    rows, scores, tiers = selectors.snapshot_predictions(snapshot=snapshot)
    assert snapshot.started_at is not None and snapshot.finished_at is not None  # a succeeded job has run
    evaluation = DriftEvaluation(
        model_version=version,
        evaluated_at=now or timezone.now(),
        window_start=snapshot.started_at,
        window_end=snapshot.finished_at,
        snapshot=snapshot,
        n_rows=len(rows),
    )
    if len(rows) < settings.MONITORING_DRIFT_MIN_ROWS:
        previous = selectors.drift_evaluation_previous(version=version)
        evaluation.status = DriftEvaluation.Status.INSUFFICIENT_DATA
        evaluation.drift_detected = previous.drift_detected if previous else False
        evaluation.save()
        return evaluation
    reference = _reference_for(version)
    result = drift.evaluate(reference, drift.columns_from_rows(reference, rows), version.feature_importance or {})
    evaluation.status = DriftEvaluation.Status.OK
    evaluation.window_drifted = result.window_drifted
    previous = selectors.drift_evaluation_previous(version=version)
    evaluation.drift_detected = _persistent_state(result.window_drifted, previous)
    evaluation.share_drifted = result.share_drifted
    evaluation.drifted_features = result.drifted
    evaluation.features = result.features
    evaluation.prediction_drift = drift.prediction_drift(reference, scores, tiers)
    fitted = version.reference_profile.get("multivariate")
    if fitted:
        evaluation.multivariate = multivariate.evaluate(fitted, multivariate.matrix_from_rows(fitted["features"], rows))
    evaluation.save()
    return evaluation


def drift_summary(evaluation: DriftEvaluation) -> str:
    if evaluation.status != DriftEvaluation.Status.OK:
        return f"insufficient data: {evaluation.n_rows} predictions in the score_all snapshot"
    state = "DRIFT DETECTED" if evaluation.drift_detected else "no drift"
    drifted = ", ".join(evaluation.drifted_features) or "none"
    return f"{state}; window drifted: {evaluation.window_drifted}; drifted features: {drifted}"[:1000]


def drift_figures(evaluation: DriftEvaluation) -> dict:
    return {
        "evaluation": evaluation.pk,
        "model_version": evaluation.model_version.version,
        "status": evaluation.status,
        "snapshot": str(evaluation.snapshot_id),
        "n_rows": evaluation.n_rows,
        "window_drifted": evaluation.window_drifted,
        "drift_detected": evaluation.drift_detected,
        "share_drifted": evaluation.share_drifted,
        "drifted_features": evaluation.drifted_features,
        "score_psi": evaluation.prediction_drift.get("score_psi"),
        "high_share_change": evaluation.prediction_drift.get("high_share_change"),
        "multivariate_error": evaluation.multivariate.get("error"),
        "multivariate_drifted": evaluation.multivariate_drifted,
    }


# --- Estimated performance ---------------------------------------------------------

# Observed / expected outside this band in the latest resolved window: the scores are no longer calibrated.
CALIBRATION_BAND = (0.8, 1.25)


def _reliability(version: ModelVersion) -> str:
    """Why the version's scores cannot be read as probabilities now ("" when nothing says so)."""
    latest = selectors.auc_evaluation_latest(version=version)
    if latest is None or latest.observed_expected is None:
        return ""
    low, high = CALIBRATION_BAND
    if low <= latest.observed_expected <= high:
        return ""
    direction = "more" if latest.observed_expected > high else "fewer"
    return (
        f"calibration drift: observed / expected {latest.observed_expected:.2f} (outside {low}-{high}) on the "
        f"appointments of {latest.window_start:%Y-%m-%d} to {latest.window_end:%Y-%m-%d}: {direction} interruptions "
        "than the scores predicted, so the scores are no longer probabilities to estimate from"
    )


def performance_estimate_create(*, now: dt.datetime | None = None) -> PerformanceEstimate | None:
    """Expected performance of the active version on its latest score_all snapshot, from the scores alone.

    Of the snapshot's patients, those in care (appointment not yet due the night it ran): a late patient's
    score was made at their booking visit and does not know they are already late, so late patients
    interrupt at several times their scores and would bend an estimate that takes scores as probabilities.

    Returns None when no version is active; raises NoSnapshot when it has no snapshot yet, or none newer
    than the last one estimated.  Marked unreliable, with the reason, when the latest resolved window
    shows calibration drift (``CALIBRATION_BAND``).
    """
    version = selectors.model_version_active()
    if version is None:
        return None
    snapshot = selectors.score_all_snapshot_latest(version=version)
    if snapshot is None:
        raise NoSnapshot(f"model version {version.version} has no full score_all snapshot yet: run the score_all job")
    if PerformanceEstimate.objects.filter(model_version=version, snapshot=snapshot).exists():
        raise NoSnapshot(f"the latest score_all snapshot ({snapshot.finished_at:%Y-%m-%d %H:%M}) is already estimated")
    assert snapshot.started_at is not None  # a succeeded job has run
    scores, tiers = selectors.snapshot_scores(snapshot=snapshot, due_from=timezone.localdate(snapshot.started_at))
    reason = _reliability(version)
    row = PerformanceEstimate(
        model_version=version,
        snapshot=snapshot,
        evaluated_at=now or timezone.now(),
        n_rows=int(scores.size),
        reliable=not reason,
        unreliable_reason=reason,
    )
    if scores.size < settings.MONITORING_DRIFT_MIN_ROWS:
        row.status = PerformanceEstimate.Status.INSUFFICIENT_DATA
        row.save()
        return row
    groups = {"very_high": tiers == RiskLevel.VERY_HIGH.value, "high_tiers": np.isin(tiers, HIGH_TIERS)}
    result = estimate.estimate(scores, groups)
    row.status = PerformanceEstimate.Status.OK
    row.expected_events = result.expected_events
    row.roc_auc, row.roc_auc_lower, row.roc_auc_upper = (
        result.roc_auc.value,
        result.roc_auc.lower,
        result.roc_auc.upper,
    )
    row.pr_auc = result.pr_auc
    row.capture_very_high = result.capture["very_high"].value
    row.capture_high_tiers = result.capture["high_tiers"].value
    row.capture = {name: vars(interval) for name, interval in result.capture.items()}
    row.save()
    return row


def performance_estimate_summary(row: PerformanceEstimate) -> str:
    if row.status != PerformanceEstimate.Status.OK:
        return f"insufficient data: {row.n_rows} predictions in the score_all snapshot"
    text = (
        f"estimated ROC-AUC {row.roc_auc:.3f} ({row.roc_auc_lower:.3f}-{row.roc_auc_upper:.3f}), "
        f"PR-AUC {row.pr_auc:.3f}, {row.capture_high_tiers:.0%} of interruptions in the high tiers, "
        f"{row.n_rows} patients in care"
    )
    return text if row.reliable else f"UNRELIABLE ({row.unreliable_reason}); {text}"[:1000]


def performance_estimate_figures(row: PerformanceEstimate) -> dict:
    fields = ("status", "n_rows", "expected_events", "roc_auc", "roc_auc_lower", "roc_auc_upper", "pr_auc")
    figures = {name: getattr(row, name) for name in fields}
    figures.update(
        estimate=row.pk,
        model_version=row.model_version.version,
        snapshot=str(row.snapshot_id),
        capture_very_high=row.capture_very_high,
        capture_high_tiers=row.capture_high_tiers,
        reliable=row.reliable,
        unreliable_reason=row.unreliable_reason,
    )
    return figures


def summary_of(prefix: str, figures) -> str:
    """A one-line summary of a dict of figures: "prefix: a=1, b=2"."""
    if not isinstance(figures, dict):
        return f"{prefix}: {figures}"
    if not figures:
        return f"{prefix}: nothing to report"
    parts = [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in figures.items()]
    return f"{prefix}: {', '.join(parts)}"[:1000]
