"""Why a patient scored high: exact TreeSHAP contributions phrased for a clinician.

``describe_factor(name, value, row=..., seen=...)`` turns one feature's value into
the words a tracing nurse would use ("21 days late for the last appointment",
"viral load unsuppressed (result of 3 Feb 2026)"): dates as dates, so a reason
stays true on any later day it is read; counts over the patient's real number
of appointments; no internal names.  ``top_factors`` picks each row's largest
contributions (either direction), one line per fact, leaving out what a nurse
cannot act on.

A value the record does not have is a reason only where the model learned that
its absence raises the risk: its contribution is an increase of at least
``MISSING_MATERIAL`` log-odds.  Records leave adherence, WHO stage or a viral
load out all the time; training keeps those gaps as gaps (NaN into XGBoost), and
"not recorded" is never a reason by default.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

import numpy as np
import xgboost as xgb

from predictions.features import FEATURES, WINDOWS

TOP_N = 5
# The smallest rise in log-odds for which a missing value is listed as a reason (a tenth of a log-odds, ~10% odds).
MISSING_MATERIAL = 0.1
_EPOCH = dt.date(1970, 1, 1)
_ADHERENCE = {0: "good", 1: "fair", 2: "poor"}
_THRESHOLDS = {"late_gt0": "late", "late_gt14": "over 14 days late", "late_gt28": "over 28 days late"}

# Context the model weighs but a nurse cannot change: never listed as a reason.
NOT_LISTED = frozenset({"facility_iit_rate", "facility_mean_days_late", "age_years", "sex_male"})
# Features that state one fact between them: a row lists only the largest of each set.
_SAME_FACT = [
    [
        "days_late_last",
        "prior_interruptions",
        *(f"{stat}_{w}" for w in WINDOWS for stat in ("late_mean", *_THRESHOLDS)),
    ],
    ["vl_category", "vl_age_days"],
    ["months_on_art", "first_6_months"],
]
_FACT = {name: i for i, names in enumerate(_SAME_FACT) for name in names}


def _n(value: float) -> int:
    return int(round(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _date(day: float) -> str:
    when = _EPOCH + dt.timedelta(days=_n(day))
    return f"{when.day} {when:%b %Y}"


def _last(count: int) -> str:
    return "the last appointment" if count == 1 else f"the last {count} appointments"


def _window(name: str, value: float, row: dict, seen: float) -> str:
    stat, w = name.rsplit("_", 1)
    earlier = row.get("n_prior_appointments")
    count = int(w) if earlier is None or earlier != earlier else min(int(w), _n(earlier))
    if stat == "late_mean":
        return f"on average {_plural(_n(value), 'day')} late for {_last(count)}"
    if count == 1:
        return ("" if value >= 1 else "not ") + f"{_THRESHOLDS[stat]} for the last appointment"
    return f"{_THRESHOLDS[stat]} for {_n(value)} of {_last(count)}"


def _days_ago(row: dict, name: str, seen: float) -> float | None:
    days = row.get(name)
    return None if days is None or days != days else seen - days


def _viral_load(value: float, row: dict, seen: float) -> str:
    tested = _days_ago(row, "vl_age_days", seen)
    if value == 2:
        return "no viral load result in the 12 months before the last visit" + (
            f" (last result {_date(tested)})" if tested is not None else ""
        )
    result = "viral load unsuppressed" if value == 1 else "viral load suppressed"
    return result + (f" (result of {_date(tested)})" if tested is not None else "")


def _first_months(value: float, row: dict, seen: float) -> str:
    months = row.get("months_on_art")
    started = "" if months is None or months != months else f" (started {_date(seen - months * 30.4375)})"
    return ("in the first 6 months of ART" if value == 1 else "on ART for more than 6 months") + started


def _next_appointment(value: float, seen: float) -> str:
    # Predictions are made as of the booking visit, so this is the interval the clinician booked.
    if value <= 0:
        return "no appointment booked after the last visit"
    return f"next appointment due {_date(seen + value)}, {_plural(_n(value), 'day')} after the last visit"


# name -> phrase(value, row, seen day): the words for a recorded value.
_PHRASES = {
    "days_late_last": lambda v, row, seen: (
        "on time for the last appointment" if v <= 0 else f"{_plural(_n(v), 'day')} late for the last appointment"
    ),
    "prior_interruptions": lambda v, row, seen: (
        "no earlier interruption in treatment" if v == 0 else f"{_plural(_n(v), 'earlier interruption')} in treatment"
    ),
    "days_since_return": lambda v, row, seen: f"returned from an interruption on {_date(seen - v)}",
    "n_prior_appointments": lambda v, row, seen: f"{_plural(_n(v), 'earlier appointment')} on record",
    "months_on_art": lambda v, row, seen: f"on ART since {_date(seen - v * 30.4375)}",
    "first_6_months": _first_months,
    "age_years": lambda v, row, seen: f"aged {int(v)}",
    "sex_male": lambda v, row, seen: "male" if v == 1 else "female",
    "days_supplied_last": lambda v, row, seen: f"{_plural(_n(v), 'day')} of ARVs at the last dispense",
    "mmd_share": lambda v, row, seen: f"{_n(v * 100)}% of dispenses multi-month (90 days or more)",
    "days_to_next_appointment": lambda v, row, seen: _next_appointment(v, seen),
    "vl_category": _viral_load,
    "vl_age_days": lambda v, row, seen: f"last viral load {_date(seen - v)}",
    "who_stage": lambda v, row, seen: f"WHO stage {_n(v)}",
    "adherence": lambda v, row, seen: f"{_ADHERENCE.get(_n(v), 'unknown')} adherence at the last assessment",
    "unscheduled_visits_12m": lambda v, row, seen: (
        f"{_plural(_n(v), 'unscheduled visit')} in the 12 months to {_date(seen)}"
    ),
    "pregnant_or_breastfeeding": lambda v, row, seen: (
        "pregnant or breastfeeding" if v == 1 else "not pregnant or breastfeeding"
    ),
    "facility_iit_rate": lambda v, row, seen: f"facility interruption rate {v * 100:.1f}%",
    "facility_mean_days_late": lambda v, row, seen: f"patients at this facility on average {v:.1f} days late",
}
for _w in WINDOWS:
    for _stat in ("late_mean", *_THRESHOLDS):
        _PHRASES[f"{_stat}_{_w}"] = partial(_window, f"{_stat}_{_w}")

_NO_EARLIER_APPOINTMENT = "no earlier appointment on record"
_NO_DISPENSE = "no ARV dispense on record"
_NO_VIRAL_LOAD = "no viral load on record"
_NO_ART_START = "ART start date not recorded"
# name -> the words for a value the record does not have.
_MISSING = {
    **{name: _NO_EARLIER_APPOINTMENT for name in _SAME_FACT[0]},
    "n_prior_appointments": _NO_EARLIER_APPOINTMENT,
    "days_since_return": "no earlier interruption",
    "months_on_art": _NO_ART_START,
    "first_6_months": _NO_ART_START,
    "age_years": "date of birth not recorded",
    "sex_male": "sex not recorded",
    "days_supplied_last": _NO_DISPENSE,
    "mmd_share": _NO_DISPENSE,
    "days_to_next_appointment": "no next appointment booked",
    "vl_category": _NO_VIRAL_LOAD,
    "vl_age_days": _NO_VIRAL_LOAD,
    "who_stage": "WHO stage not recorded",
    "adherence": "adherence not assessed",
    "unscheduled_visits_12m": "no unscheduled visit on record",
    "pregnant_or_breastfeeding": "pregnancy and breastfeeding not recorded",
    "facility_iit_rate": "facility interruption rate not known",
    "facility_mean_days_late": "facility lateness not known",
}


def describe_factor(name: str, value: float | None, *, row: dict | None = None, seen: dt.date | float) -> str:
    """Clinician-facing words for one feature value.

    ``row`` (the patient's features) adds detail: the real number of earlier appointments, the date of
    a result; ``seen`` is the last day the score saw (a date, or days since 1970-01-01), from which
    "days ago" features become dates.
    """
    if value is None or value != value:
        return _MISSING[name]
    seen_day = float((seen - _EPOCH).days) if isinstance(seen, dt.date) else seen
    return _PHRASES[name](value, row or {}, seen_day)


def treeshap(booster: xgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """Exact TreeSHAP (n, len(FEATURES) + 1): each feature's contribution, then the bias.

    A row's values add up to the model's margin for it (XGBoost's documented identity).
    """
    # One thread, the booster's (registry.artifact_load): batch chunks use the cores as Celery worker processes,
    # one per core; two XGBoost threads in each of 2 workers on 2 cores took more CPU for no less time.
    # The columns are FEATURES in order by construction (FeatureRows.matrix), as for inplace_predict: naming
    # them on every call only re-validated what cannot differ, a fifth of a single row's TreeSHAP time.
    dmatrix = xgb.DMatrix(matrix.astype(np.float32), nthread=1)
    return booster.predict(dmatrix, pred_contribs=True, validate_features=False)


def contributions(booster: xgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """Exact TreeSHAP per feature (n, len(FEATURES)); the bias column is dropped."""
    return treeshap(booster, matrix)[:, :-1]


def top_factors(
    contribs: np.ndarray, features: list[dict], *, seen_days: np.ndarray, n: int = TOP_N
) -> list[list[dict]]:
    """Each row's ``n`` largest contributions by size, with direction and the patient's own value.

    Context in ``NOT_LISTED`` is passed over, as is a missing value whose absence the model did not
    learn to count against the patient, and of features that state one fact (the lateness history,
    the viral load, time on ART) only the largest is listed.
    """
    # Every column in order of size: any number of missing values may be passed over before n are listed.
    order = np.argsort(-np.abs(contribs), axis=1, kind="stable")
    weights = np.take_along_axis(contribs, order, axis=1).astype(np.float64)
    # One vectorized rounding: builtins.round took 1.7 us a factor, 0.8 s over a 100k-patient batch.
    rows = zip(
        features, order.tolist(), weights.tolist(), np.round(weights, 4).tolist(), seen_days.tolist(), strict=True
    )
    return [
        _listed(values, columns, row_weights, row_rounded, seen, n)
        for values, columns, row_weights, row_rounded, seen in rows
    ]


def _listable(value, weight: float) -> bool:
    """A recorded value always; a missing one only when its absence raises the risk materially."""
    return not (value is None or value != value) or weight >= MISSING_MATERIAL


def _listed(values: dict, columns: list, weights: list, rounded: list, seen: float, n: int) -> list[dict]:
    factors: list[dict] = []
    facts: set[int] = set()
    for j, weight, shown in zip(columns, weights, rounded, strict=True):
        if weight == 0.0 or len(factors) == n:
            break
        name = FEATURES[j]
        fact = _FACT.get(name)
        if name in NOT_LISTED or fact in facts or not _listable(values[name], weight):
            continue
        if fact is not None:
            facts.add(fact)
        factors.append(
            {
                "feature": name,
                "value": values[name],
                "contribution": shown,
                "direction": "increases" if weight > 0 else "decreases",
                "description": describe_factor(name, values[name], row=values, seen=seen),
            }
        )
    return factors
