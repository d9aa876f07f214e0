"""A challenger, ready: the ``retrain`` job trains a candidate and compares it with the active version.

1. ``challenger_train`` trains on everything known by ``as_of`` (``predictions.services.model_train``); the
   candidate is registered, inactive.
2. ``model_comparison_create`` scores the candidate and the active version on the same rows: the most recent
   resolved appointments that neither trained on, the rows the activation gate scores
   (``predictions.training.recent_resolved``), each model with its own facility aggregates and its own tier
   cut-offs (staff overrides are in the active model's score units, so neither side uses them).
3. Staff promote it (``comparison_promote_request``; the worker then runs ``comparison_promote``, the
   activation gate without force) or dismiss it (``comparison_dismiss``); each request is in the audit log.
   ``RETRAIN_AUTO_PROMOTE`` sends every new candidate through the same gate at once.

The drift job proposes a retrain (``retrain_propose``) when drift has been declared on
``RETRAIN_DRIFT_SNAPSHOTS`` evaluated snapshots in a row: once per streak, and not while a candidate awaits
a decision.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from iit_service.caller import Caller
from iit_service.errors import Conflict, NotFound
from monitoring.evaluation import auc
from monitoring.models import DriftEvaluation, ModelComparison
from patients.models import AuditEvent, Facility
from patients.services import audit_event
from predictions import registry, selectors, tiers
from predictions.labels import IIT
from predictions.models import ModelVersion
from predictions.services import (
    ActivationCheck,
    ActivationRefused,
    model_scores_on,
    model_train,
    model_version_promote,
)
from predictions.training import ACTIVATION_AUC_TOLERANCE, recent_resolved

log = logging.getLogger("iit.monitoring")
security_log = logging.getLogger("iit.security")

JOB_CALLER = Caller(user=None, path="job: retrain")  # the audit row of an automatic promotion


class ComparisonStateError(Conflict):
    """The comparison was already promoted, dismissed, or is being promoted."""

    code = "comparison_decided"


# --- training and comparing ---------------------------------------------------------------


def challenger_train(*, as_of: dt.date | None = None, trigger: str = "manual") -> ModelComparison:
    """Train a candidate on the data known by ``as_of`` (default today), compare it, and promote it through
    the gate when ``RETRAIN_AUTO_PROMOTE`` is on. Raises ValueError when there is too little history."""
    as_of = as_of or timezone.localdate()
    candidate = model_train(as_of=as_of)
    comparison = model_comparison_create(candidate=candidate, as_of=as_of, trigger=trigger)
    if settings.RETRAIN_AUTO_PROMOTE:
        comparison_promote_request(comparison_id=comparison.pk, caller=JOB_CALLER, enqueue=False)
        comparison = comparison_promote(comparison_id=comparison.pk)
    return comparison


def model_comparison_create(*, candidate: ModelVersion, as_of: dt.date, trigger: str = "manual") -> ModelComparison:
    """Score ``candidate`` and the active version on the same recent resolved appointments; store every figure."""
    active = ModelVersion.objects.filter(is_active=True).exclude(pk=candidate.pk).first()
    timeline, table = selectors.record_of()
    after = max(candidate.training_window_end, active.training_window_end) if active else candidate.training_window_end
    labels = recent_resolved(timeline=timeline, patients=table, as_of=as_of, after=after)
    y = (labels["label"] == IIT).to_numpy(dtype=np.int8)
    facility_ids = table.facility_id[table.rows_of(labels["patient_id"].to_numpy())]

    def scored(version: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
        scores = model_scores_on(
            model=registry.artifact_load(version), labels=labels, timeline=timeline, patients=table
        )
        return scores, tier_levels(version, scores, facility_ids)

    mine = scored(candidate)
    theirs, note = None, ""
    if active is not None:
        try:
            theirs = scored(active)
        except registry.ModelUnavailable as exc:
            note = f"the active version cannot be scored: {exc}"
    window = (labels["scheduled"].min().date(), labels["scheduled"].max().date()) if len(labels) else None
    figures: dict[str, Any] = {
        "candidate": model_figures(y, *mine),
        "active": model_figures(y, *theirs) if theirs else None,
        "difference": difference_figures(y, mine[0], theirs[0]) if theirs else None,
        "tolerance": ACTIVATION_AUC_TOLERANCE,
    }
    check = ActivationCheck(
        candidate.version,
        active.version if active else "",
        len(y),
        int(y.sum()),
        _auc_or_nan(figures["candidate"]),
        _auc_or_nan(figures["active"]),
        window,
    )
    return ModelComparison.objects.create(
        candidate=candidate,
        active=active,
        created_at=timezone.now(),
        trigger=trigger,
        as_of=as_of,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        n=len(y),
        n_events=int(y.sum()),
        passes_gate=active is None or check.allowed,
        figures=figures,
        facilities=facility_figures(y, mine, theirs, facility_ids),
        note=note,
    )


def tier_levels(version: ModelVersion, scores: np.ndarray, facility_ids: np.ndarray) -> np.ndarray:
    """Each row's tier under ``version``'s own cut-offs (its facility's where it has them)."""
    own = {int(key): cut for key, cut in (version.facility_tier_cutoffs or {}).items()}
    return tiers.levels(scores, tiers.cutoff_matrix(version.tier_cutoffs, facility_ids, {}, own))


def model_figures(y: np.ndarray, scores: np.ndarray, levels: np.ndarray) -> dict:
    """ROC-AUC with DeLong's interval, PR-AUC, Brier, O/E, and the share of interruptions in the top tiers."""
    figures = auc.evaluate(y, scores, min_events=2, calibration=False).as_dict()
    figures.pop("calibration")
    very_high = levels == tiers.RiskLevel.VERY_HIGH
    high_or_above = np.isin(levels, tiers.HIGH_TIERS)
    events = int(y.sum())
    figures.update(
        capture_very_high=float(y[very_high].sum() / events) if events else None,
        capture_high=float(y[high_or_above].sum() / events) if events else None,
        share_high=float(high_or_above.mean()) if y.size else None,
    )
    return {key: _json_number(value) for key, value in figures.items()}


def difference_figures(y: np.ndarray, candidate: np.ndarray, active: np.ndarray) -> dict:
    """Candidate − active ROC-AUC with its 95% interval and p-value (DeLong's paired test)."""
    if y.size == 0:
        return {"roc_auc": None, "lower": None, "upper": None, "p_value": None}
    paired = auc.delong_paired(y, candidate, active)
    figures = {"roc_auc": paired.difference, "lower": paired.lower, "upper": paired.upper, "p_value": paired.p_value}
    return {key: _json_number(value) for key, value in figures.items()}


def facility_figures(y: np.ndarray, mine: tuple, theirs: tuple | None, facility_ids: np.ndarray) -> list[dict]:
    """Per facility: appointments, interruptions, and each model's ROC-AUC (where the facility has
    ``MONITORING_AUC_SEGMENT_MIN_EVENTS`` of each class) and capture in the high tiers."""
    codes = dict(Facility.objects.filter(pk__in=np.unique(facility_ids).tolist()).values_list("pk", "code"))
    rows = []
    for facility_id in np.unique(facility_ids).tolist():
        here = facility_ids == facility_id
        code = codes.get(facility_id, str(facility_id))
        row = {"facility": code, "n": int(here.sum()), "n_events": int(y[here].sum())}
        for side, result in (("candidate", mine), ("active", theirs)):
            if result is not None:
                scores, levels = result
                row[side] = _facility_side(y[here], scores[here], levels[here])
        rows.append(row)
    return sorted(rows, key=lambda row: row["facility"])


def _facility_side(y: np.ndarray, scores: np.ndarray, levels: np.ndarray) -> dict:
    result = auc.evaluate(y, scores, min_events=settings.MONITORING_AUC_SEGMENT_MIN_EVENTS, calibration=False)
    events = int(y.sum())
    captured = y[np.isin(levels, tiers.HIGH_TIERS)].sum() / events if events else None
    return {"roc_auc": _json_number(result.roc_auc), "capture_high": _json_number(captured)}


def _json_number(value):
    """NaN and numpy numbers as JSON takes them: None, float."""
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) else float(value)
    return value


def _auc_or_nan(figures: dict | None) -> float:
    value = (figures or {}).get("roc_auc")
    return float("nan") if value is None else float(value)


# --- staff's decision ------------------------------------------------------------------------


def comparison_promote_request(*, comparison_id: int, caller: Caller, enqueue: bool = True) -> ModelComparison:
    """Claim a comparison awaiting a decision for promotion, audit the request, and (``enqueue``) send the
    activation gate to the worker once the request commits: the gate scores two models."""
    with transaction.atomic():
        comparison = _claim(comparison_id, to=ModelComparison.Status.PROMOTING, caller=caller)
        _audit(caller=caller, action=AuditEvent.Action.PROMOTE, comparison=comparison)
        if enqueue:
            from monitoring.tasks import promote_challenger

            transaction.on_commit(lambda: promote_challenger.delay(comparison_id))
    return comparison


def comparison_promote(*, comparison_id: int) -> ModelComparison:
    """Activate the candidate through the activation gate (never forced); a refusal is kept with its reason.

    Only a comparison claimed for promotion moves: a redelivered task finds it decided and does nothing.
    """
    comparison = ModelComparison.objects.select_related("candidate").get(pk=comparison_id)
    if comparison.status != ModelComparison.Status.PROMOTING:
        return comparison
    try:
        _, check = model_version_promote(version=comparison.candidate)
    except ActivationRefused as exc:
        status, note = ModelComparison.Status.REFUSED, f"refused by the activation gate: {exc.check}"
    except (registry.ModelUnavailable, registry.ActivationConflict) as exc:
        status, note = ModelComparison.Status.REFUSED, f"not activated: {exc}"
    else:
        status = ModelComparison.Status.PROMOTED
        note = f"passed the activation gate: {check}" if check else "no other version was active"
    ModelComparison.objects.filter(pk=comparison_id, status=ModelComparison.Status.PROMOTING).update(
        status=status, note=note[:2000], decided_at=timezone.now()
    )
    log.info("model comparison decided", extra={"event": "challenger_" + status, "comparison": comparison_id})
    comparison.refresh_from_db()
    return comparison


def comparison_dismiss(*, comparison_id: int, caller: Caller, note: str = "") -> ModelComparison:
    """Set the candidate aside (it stays registered, inactive); audited."""
    with transaction.atomic():
        comparison = _claim(comparison_id, to=ModelComparison.Status.DISMISSED, caller=caller, note=note)
        _audit(caller=caller, action=AuditEvent.Action.DISMISS, comparison=comparison)
    return comparison


# A promotion still requested after this long lost its task (the broker was down when the request committed):
# staff may ask again.
PROMOTION_LOST_AFTER = dt.timedelta(hours=1)


def _claim(comparison_id: int, *, to: str, caller: Caller, note: str = "") -> ModelComparison:
    """Move a comparison awaiting a decision to ``to``: a conditional update, so two staff cannot both decide."""
    now = timezone.now()
    open_to_decide = Q(status__in=ModelComparison.DECIDABLE)
    if to == ModelComparison.Status.PROMOTING:
        open_to_decide |= Q(status=to, decided_at__lt=now - PROMOTION_LOST_AFTER)
    changed = ModelComparison.objects.filter(open_to_decide, pk=comparison_id).update(
        status=to, decided_by=caller.authenticated_user, decided_at=now, note=note[:2000]
    )
    comparison = ModelComparison.objects.select_related("candidate").filter(pk=comparison_id).first()
    if comparison is None:
        raise NotFound(f"no model comparison {comparison_id}")
    if not changed:
        raise ComparisonStateError(f"comparison {comparison_id} is {comparison.get_status_display().lower()}")
    return comparison


def _audit(*, caller: Caller, action: str, comparison: ModelComparison) -> None:
    event = audit_event(caller=caller, action=action, resource="model_comparison")
    if caller.authenticated_user is None:
        event.username = caller.path or "system"
    event.save()
    security_log.info(
        "model comparison " + action,
        extra={
            "event": "model_" + action,
            "user": event.username,
            "comparison": comparison.pk,
            "candidate": comparison.candidate.version,
            "client_address": caller.client_address,
        },
    )


# --- drift proposes a retrain -------------------------------------------------------------------


def retrain_propose(*, evaluation: DriftEvaluation) -> bool:
    """Enqueue the ``retrain`` job when ``evaluation`` makes ``RETRAIN_DRIFT_SNAPSHOTS`` evaluated snapshots in a
    row with drift declared (exactly that many: once per streak), unless a candidate awaits a decision."""
    streak = settings.RETRAIN_DRIFT_SNAPSHOTS
    recent = DriftEvaluation.objects.filter(model_version=evaluation.model_version, status=DriftEvaluation.Status.OK)
    latest = list(recent.order_by("-evaluated_at", "-id").values_list("drift_detected", flat=True)[: streak + 1])
    if latest[:streak] != [True] * streak or latest[streak:] == [True]:
        return False
    if ModelComparison.objects.filter(status__in=ModelComparison.DECIDABLE).exists():
        return False
    from monitoring.tasks import run_job

    transaction.on_commit(lambda: run_job.delay("retrain", trigger="drift"))
    log.info("retrain proposed", extra={"event": "retrain_proposed", "drift_evaluation": evaluation.pk})
    return True
