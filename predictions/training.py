"""Training: labelled appointments -> features as of their booking visit -> XGBoost.

The one design rule: **a prediction is made as of the patient's last booking visit**
(the end of the day a next appointment or an ARV dispense was recorded; KenyaEMR's
IIT model does the same).  Training rows are exactly that moment for every past
appointment, and serving scores each patient as of their latest booking visit
(``features.scoring_moments``), never "now, some days later".  So the model never
meets a row of a kind it was not trained on: there is no elapsed-time feature
whose live values (days since the visit, days left to the appointment) would
differ from training, ``days_to_next_appointment`` is the interval the clinician
booked, and a patient's risk changes when their record changes, not with the
calendar.  Outcome resolution starts from the same moment, so the monitored
label is the trained label.

1. Label every appointment in the data as of ``as_of`` (``labels.label_appointments``)
   and keep the resolved ones (IIT or retained).
2. Split by time: validation = appointments scheduled in the most recent
   ``VALIDATION_SHARE`` of the calendar; training = appointments whose outcome
   (due + 28 days) was known before the validation period began.
3. Facility aggregates (IIT rate, mean lateness) come from the training period
   only, smoothed toward the overall rate, and are frozen on the version.
4. Features for each appointment as of the end of the day that scheduled it,
   through the one pipeline (``features.compute_features``), from observations
   both observed and entered before that moment (``known_then``): a result
   entered weeks after the visit is not in that visit's row.
5. XGBoost with class weighting (``scale_pos_weight``) and early stopping on a
   held-out 15% of training *patients*, so the validation period stays unseen
   until it is scored.  Weighting shifts the log-odds by log(weight); the margin
   offset stored with the model undoes it, so scores are calibrated probabilities.
6. The at-risk population at ``as_of`` (``reference_rows``): what serving would
   have scored at the end of that day, one row per patient a prediction is for
   (active, booked, in care or late: ``care.Schedules.at_risk``), as of their
   last booking visit.  Its scores set the tier cut-offs, overall and per
   facility (``tiers``), and its profile is the drift reference, the same
   population the nightly ``score_all`` snapshot holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb
from tqdm import tqdm

from monitoring.evaluation import auc
from predictions.care import IN_CARE, schedules_of
from predictions.features import FEATURES, FeatureRows, compute_features, scoring_moments
from predictions.labels import IIT, RETAINED, label_appointments
from predictions.timeline import DAY, IIT_GRACE_DAYS, STATUS_CODES, PatientTable, Timeline, day_of

VALIDATION_SHARE = 0.2
EARLY_STOPPING_SHARE = 0.15
FACILITY_PRIOR_WEIGHT = 50.0
PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": ["logloss", "auc"],
    "tree_method": "hist",
    # 0.25 rather than 0.1: on the 100k-patient cohort early stopping ends at 49 trees instead of 117 for
    # held-out ROC-AUC 0.8081 against 0.8085 (PR-AUC 0.324/0.325, Brier 0.0544 both), and exact TreeSHAP,
    # a quarter of a batch's CPU, costs in proportion to the trees.
    "eta": 0.25,
    # Depth 3 scores as well as 4 on the cohort and makes exact TreeSHAP (cost ~ trees x leaves x depth^2)
    # several times cheaper, which is what a 100k-patient batch with explanations spends its time on.
    "max_depth": 3,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
    "nthread": 2,
    "seed": 7,
}
MAX_ROUNDS = 250
EARLY_STOPPING_ROUNDS = 30
# A tree must earn its keep: stop when 30 rounds add less than this to the held-out AUC. On a
# 100k-patient cohort the last ~150 of 205 trees added 0.0006 AUC together, yet exact TreeSHAP
# (every stored prediction's explanation) costs time in proportion to the number of trees.
MIN_AUC_GAIN = 5e-4


@dataclass
class TrainingSet:
    labels: pd.DataFrame  # resolved appointments: patient_id, scheduled, due, label, ...
    rows: FeatureRows
    y: np.ndarray
    is_validation: np.ndarray
    is_training: np.ndarray
    facility_stats: dict
    split_day: int


@dataclass
class TrainedModel:
    booster: xgb.Booster
    margin_offset: float
    training: TrainingSet
    validation_scores: np.ndarray
    metrics: dict
    params: dict


def training_set(*, timeline: Timeline, patients: PatientTable, as_of: dt.date) -> TrainingSet:
    labels = label_appointments(timeline=timeline, patients=patients, as_of=as_of)
    labels = labels[labels["label"].isin([IIT, RETAINED])].reset_index(drop=True)
    if labels.empty:
        raise ValueError(f"no resolved appointments as of {as_of}: nothing to train on")
    scheduled = _days(labels["scheduled"])
    resolved = _days(labels["due"]) + IIT_GRACE_DAYS
    split_day = int(np.quantile(scheduled, 1 - VALIDATION_SHARE))
    is_validation = scheduled >= split_day
    is_training = resolved < split_day
    y = (labels["label"] == IIT).to_numpy(dtype=np.float64)
    for name, part in (("training", is_training), ("validation", is_validation)):
        if len(set(y[part].tolist())) < 2:
            raise ValueError(f"the {name} period has no interruptions or no retained appointments: too little history")
    stats = facility_stats(labels=labels[is_training], patients=patients)
    rows = appointment_rows(timeline=timeline, patients=patients, labels=labels, facility_stats=stats)
    return TrainingSet(labels, rows, y, is_validation, is_training, stats, split_day)


def appointment_rows(
    *, timeline: Timeline, patients: PatientTable, labels: pd.DataFrame, facility_stats
) -> FeatureRows:
    """Features of each labelled appointment as of the end of the day that booked it."""
    return compute_features(
        timeline=timeline,
        patients=patients,
        patient_ids=labels["patient_id"].to_numpy(),
        as_of=(_days(labels["scheduled"]).astype(np.int64) + 1) * DAY,
        facility_stats=facility_stats,
        known_then=True,  # what the clinic had entered by then, as the training rows saw it
    )


@dataclass
class ReferenceRows:
    """The at-risk patients at training, each as of their last booking visit."""

    patient_ids: np.ndarray
    facility_ids: np.ndarray
    rows: FeatureRows
    in_care: np.ndarray  # bool: in care (not yet due), not late: the patients whose scores set the tiers


def at_risk_ids(*, timeline: Timeline, patients: PatientTable, now: int, today: int) -> np.ndarray:
    """Ids of the patients a prediction is for at ``now`` (epoch s) on ``today`` (a day number): active,
    booked, in care or late."""
    return _at_risk(timeline=timeline, patients=patients, now=now, today=today)[0]


def _at_risk(*, timeline: Timeline, patients: PatientTable, now: int, today: int) -> tuple[np.ndarray, np.ndarray]:
    """``at_risk_ids``, and which of them are in care (the others are late)."""
    active = patients.id[patients.status == STATUS_CODES["active"]]
    schedules = schedules_of(timeline=timeline, patient_ids=active, now=now)
    at_risk = schedules.at_risk(today)
    return active[at_risk], schedules.states(today)[at_risk] == IN_CARE


def reference_rows(
    *, timeline: Timeline, patients: PatientTable, as_of: dt.date, facility_stats: dict
) -> ReferenceRows:
    """Serving's rows at the end of ``as_of``: every at-risk patient as of their last booking visit."""
    now = int(day_of(as_of) + 1) * DAY
    ids, in_care = _at_risk(timeline=timeline, patients=patients, now=now, today=int(day_of(as_of)))
    moments = scoring_moments(timeline=timeline, patient_ids=ids, now=now)
    rows = compute_features(
        timeline=timeline, patients=patients, patient_ids=ids, as_of=moments, facility_stats=facility_stats
    )
    return ReferenceRows(ids, patients.facility_id[patients.rows_of(ids)], rows, in_care)


# --- the activation check: no silent downgrade -----------------------------------------

# A candidate may score at most this much lower ROC-AUC than the active version on the same appointments.
ACTIVATION_AUC_TOLERANCE = 0.02


def recent_resolved(*, timeline: Timeline, patients: PatientTable, as_of: dt.date, after: dt.date) -> pd.DataFrame:
    """The most recent resolved appointments as of ``as_of`` (the last ``VALIDATION_SHARE`` of their calendar,
    as training's validation period), keeping only those scheduled after ``after``."""
    labels = label_appointments(timeline=timeline, patients=patients, as_of=as_of)
    labels = labels[labels["label"].isin([IIT, RETAINED])].reset_index(drop=True)
    if labels.empty:
        return labels
    scheduled = _days(labels["scheduled"])
    recent = (scheduled >= np.quantile(scheduled, 1 - VALIDATION_SHARE)) & (scheduled > day_of(after))
    return labels[recent].reset_index(drop=True)


def scores_on(
    *,
    booster: xgb.Booster,
    margin_offset: float,
    facility_stats,
    labels: pd.DataFrame,
    timeline: Timeline,
    patients: PatientTable,
) -> np.ndarray:
    """A model's risk for each labelled appointment, scored as of its booking visit with the model's own
    facility aggregates."""
    rows = appointment_rows(timeline=timeline, patients=patients, labels=labels, facility_stats=facility_stats)
    return probabilities(booster, rows.matrix.astype(np.float32), margin_offset)


def facility_stats(*, labels: pd.DataFrame, patients: PatientTable) -> dict:
    """Per facility IIT rate and mean days late (of returns), shrunk toward the overall values."""
    facility = patients.facility_id[patients.rows_of(labels["patient_id"].to_numpy())]
    iit = (labels["label"] == IIT).to_numpy(dtype=np.float64)
    late = np.clip(labels["days_late"].to_numpy(dtype=np.float64), 0, None)
    returned = ~np.isnan(late) & (iit == 0)
    overall = {"iit_rate": float(iit.mean()), "mean_days_late": float(late[returned].mean() if returned.any() else 0)}
    frame = pd.DataFrame({"facility": facility, "iit": iit, "late": np.where(returned, late, 0.0), "ret": returned})
    sums = frame.groupby("facility").sum()
    counts = frame.groupby("facility").size()
    w = FACILITY_PRIOR_WEIGHT
    rate = (sums["iit"] + w * overall["iit_rate"]) / (counts + w)
    mean_late = (sums["late"] + w * overall["mean_days_late"]) / (sums["ret"] + w)
    facilities = {
        str(f): {"iit_rate": round(float(rate[f]), 5), "mean_days_late": round(float(mean_late[f]), 4)}
        for f in sums.index
    }
    return {"overall": overall, "facilities": facilities}


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, total: int, enabled: bool):
        self.bar = tqdm(total=total, desc="boosting", unit="tree", disable=not enabled)

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self.bar.update(1)
        auc = evals_log.get("early_stopping", {}).get("auc")
        if auc:
            self.bar.set_postfix(auc=f"{auc[-1]:.4f}")
        return False

    def after_training(self, model):
        self.bar.close()
        return model


def train(data: TrainingSet, *, progress: bool = False) -> TrainedModel:
    train_mask, stop_mask = _early_stopping_split(data)
    x = data.rows.matrix.astype(np.float32)
    positives = data.y[train_mask].sum()
    if positives == 0 or positives == train_mask.sum():
        raise ValueError("training data has a single class")
    weight = float((train_mask.sum() - positives) / positives)
    params = {**PARAMS, "scale_pos_weight": weight}
    dtrain = xgb.DMatrix(x[train_mask], label=data.y[train_mask], feature_names=FEATURES)
    dstop = xgb.DMatrix(x[stop_mask], label=data.y[stop_mask], feature_names=FEATURES)
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=MAX_ROUNDS,
        evals=[(dstop, "early_stopping")],
        verbose_eval=False,
        callbacks=[_stopping(), _Progress(MAX_ROUNDS, progress)],
    )
    booster = booster[: booster.best_iteration + 1]
    offset = -float(np.log(weight))
    scores = probabilities(booster, x[data.is_validation], offset)
    metrics = validation_metrics(data.y[data.is_validation], scores)
    metrics.update(
        n_train=int(train_mask.sum()),
        n_early_stopping=int(stop_mask.sum()),
        best_iteration=int(booster.num_boosted_rounds()),
    )
    metrics["n_validation"] = int(data.is_validation.sum())
    metrics["train_iit_rate"] = float(data.y[data.is_training].mean())
    params.update(margin_offset=offset, scale_pos_weight=weight)
    return TrainedModel(booster, offset, data, scores, metrics, params)


def validation_metrics(y: np.ndarray, scores: np.ndarray) -> dict:
    """The held-out figures stored on the version (``ModelVersion.metrics``), by monitoring's own definitions."""
    return {
        "roc_auc": _rounded(auc.roc_auc(y, scores), 4),
        "pr_auc": _rounded(auc.average_precision(y, scores), 4),
        "brier": _rounded(auc.brier(y, scores), 5),
        "observed_expected": _rounded(auc.observed_expected(y, scores), 4),
        "capture_top10": _rounded(auc.capture(y, scores, 0.10), 4),
        "capture_top25": _rounded(auc.capture(y, scores, 0.25), 4),
        "prevalence": round(float(y.mean()), 4),
        "mean_score": round(float(scores.mean()), 4),
    }


def _rounded(value: float | None, digits: int) -> float | None:
    # An undefined figure (NaN) is stored as null: JSON has no NaN, and PostgreSQL's jsonb refuses one.
    return None if value is None or value != value else round(value, digits)


def _stopping() -> xgb.callback.EarlyStopping:
    return xgb.callback.EarlyStopping(
        rounds=EARLY_STOPPING_ROUNDS,
        metric_name="auc",
        data_name="early_stopping",
        maximize=True,
        min_delta=MIN_AUC_GAIN,
    )


def probabilities(booster: xgb.Booster, x: np.ndarray, margin_offset: float) -> np.ndarray:
    margin = booster.inplace_predict(x, predict_type="margin")
    return 1.0 / (1.0 + np.exp(-(margin + margin_offset)))


def _early_stopping_split(data: TrainingSet) -> tuple[np.ndarray, np.ndarray]:
    pid = data.labels["patient_id"].to_numpy()
    held_out = (pid * 2654435761 % 1000) < EARLY_STOPPING_SHARE * 1000  # a fixed pseudo-random 15% of patients
    return data.is_training & ~held_out, data.is_training & held_out


def _days(values: pd.Series) -> np.ndarray:
    return ((pd.to_datetime(values) - pd.Timestamp(0)) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
