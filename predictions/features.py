"""THE feature pipeline: training rows, batch scoring and single predictions all come through
``compute_features``.

A query is (patient, as-of moment).  Only observations strictly before the
moment are used, so adding later observations never changes a feature (tested).
With ``known_then`` (training rows, backfilled predictions) an observation must
also have been entered before the moment: a result that came back weeks after
the visit is not in that visit's row, because the clinic could not have seen
it.  Serving scores the record as it stands, as of the last booking visit.  The
booking visit a row is made as of is the row's anchor: its scheduling
observations count from its day.

Every step is vectorized over all queries at once with numpy: appointment history is
precomputed per scheduling visit with cumulative sums over the patient's
appointments, and each query picks its patient's last scheduling visit before
the moment with one ``searchsorted``.  No per-patient Python loop anywhere, so
the same code serves one patient and a 100,000-patient batch.

Missing values are NaN (XGBoost learns a default direction for them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictions.timeline import (
    ADHERENCE,
    BREASTFEEDING,
    DAY,
    PREGNANT,
    UNSCHEDULED,
    VIRAL_LOAD,
    VISIT,
    WHO_STAGE,
    Appointments,
    PatientTable,
    Timeline,
    group_starts,
    last_before,
    last_entered_before,
    pair_key,
)

WINDOWS = (3, 5, 10)
_LATENESS_STATISTICS = ("late_mean", "late_gt0", "late_gt14", "late_gt28")  # the rows of appointment_history's sums
STORED_DECIMALS = 4  # a Prediction's stored features, and so the drift reference, are rounded to this
SUPPRESSED_BELOW = 1000.0
VL_CURRENT_DAYS = 365
PREGNANCY_DAYS = 280
BREASTFEEDING_DAYS = 365
MULTI_MONTH_DAYS = 90

_HISTORY = ["days_late_last"] + [
    f"{stat}_{w}" for w in WINDOWS for stat in ("late_mean", "late_gt0", "late_gt14", "late_gt28")
]
FEATURES: list[str] = [
    *_HISTORY,
    "prior_interruptions",
    "days_since_return",
    "n_prior_appointments",
    "months_on_art",
    "first_6_months",
    "age_years",
    "sex_male",
    "days_supplied_last",
    "mmd_share",
    "days_to_next_appointment",
    "vl_category",
    "vl_age_days",
    "who_stage",
    "adherence",
    "unscheduled_visits_12m",
    "pregnant_or_breastfeeding",
    "facility_iit_rate",
    "facility_mean_days_late",
]
# Categorical features: code -> meaning (drift compares their frequencies, not bins).
CATEGORIES: dict[str, dict[int, str]] = {
    "first_6_months": {0: "no", 1: "yes"},
    "sex_male": {0: "female", 1: "male"},
    "vl_category": {0: "suppressed", 1: "unsuppressed", 2: "none in 12 months"},
    "who_stage": {1: "1", 2: "2", 3: "3", 4: "4"},
    "adherence": {0: "good", 1: "fair", 2: "poor"},
    "pregnant_or_breastfeeding": {0: "no", 1: "yes"},
}
_CATEGORICAL_COLUMNS = [FEATURES.index(name) for name in CATEGORIES]


@dataclass(frozen=True)
class FeatureRows:
    """One row per query, columns in ``FEATURES`` order, plus the appointment each row predicts."""

    matrix: np.ndarray  # float64 (n, len(FEATURES))
    appointment_day: np.ndarray  # day of the upcoming appointment, NaN if none on record
    seen_day: np.ndarray  # the last day whose data each row saw: the day its "days ago" features count from

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.matrix, columns=FEATURES)

    def row_dicts(self) -> list[dict[str, float | int | None]]:
        """JSON-ready rows: None for missing, categorical codes as integers (the reference profile's keys)."""
        values = np.round(self.matrix, STORED_DECIMALS).astype(object)
        for j in _CATEGORICAL_COLUMNS:
            values[:, j] = [None if v != v else int(v) for v in self.matrix[:, j].tolist()]
        values[np.isnan(self.matrix)] = None
        return [dict(zip(FEATURES, row, strict=True)) for row in values.tolist()]


def compute_features(
    *,
    timeline: Timeline,
    patients: PatientTable,
    patient_ids: np.ndarray,
    as_of: np.ndarray,
    facility_stats: FacilityStats | dict | None = None,
    known_then: bool = False,
) -> FeatureRows:
    """Features for each (patient_ids[i], as_of[i] in epoch seconds) from observations before as_of[i].

    ``known_then``: only observations also entered before as_of[i] (what the clinic could see at that moment).
    """
    pid = np.asarray(patient_ids, dtype=np.int64)
    seconds = np.asarray(as_of, dtype=np.int64)
    if len(seconds):
        timeline = timeline.before(int(seconds.max()), entered=known_then)
    today = ((seconds - 1) // DAY).astype(np.float64)  # the last day whose data the query may see
    columns: dict[str, np.ndarray] = {}
    appts = timeline.appointments
    k = last_before(pair_key(appts.pid, appts.scheduled_t), appts.pid, pid, pair_key(pid, seconds))
    history = appointment_history(appts)
    names = list(history)
    # One gather of every per-appointment column at each query's appointment (k = -1: none, all NaN). np.array
    # of the columns, transposed, is column_stack in one call (column_stack converts each column in Python).
    stacked = np.array([history[name] for name in names] + [appts.due], dtype=np.float64).T if len(appts) else None
    gathered = np.full((len(pid), len(names) + 1), np.nan)
    hit = k >= 0
    if stacked is not None:
        gathered[hit] = stacked[k[hit]]
    columns.update({name: gathered[:, j] for j, name in enumerate(names)})
    columns["days_since_return"] = today - columns.pop("last_return")
    due = gathered[:, -1]
    columns["days_to_next_appointment"] = due - today
    columns.update(_demographics(patients, pid, today))
    columns.update(_clinical(timeline, pid, seconds, today, columns["sex_male"], known_then=known_then))
    stats = facility_stats if isinstance(facility_stats, FacilityStats) else FacilityStats.of(facility_stats or {})
    columns.update(stats.columns(patients.facility_id[patients.rows_of(pid)]))
    if not len(pid):
        return FeatureRows(matrix=np.zeros((0, len(FEATURES))), appointment_day=due, seen_day=today)
    matrix = np.array([columns[name] for name in FEATURES], dtype=np.float64).T  # row-major, as XGBoost reads it
    return FeatureRows(matrix=np.ascontiguousarray(matrix), appointment_day=due, seen_day=today)


def scoring_moments(*, timeline: Timeline, patient_ids: np.ndarray, now: int) -> np.ndarray:
    """Each patient's scoring moment at ``now`` (epoch s): the end of the day of their last booking visit.

    Training rows are features as of the end of the day that booked the
    appointment; scoring a patient as of their last booking visit (never
    later) makes every live row the same kind of row the model learned from.
    A visit today is scored as of ``now``; a patient with no booking yet too.
    """
    day = last_booking_day(timeline=timeline, patient_ids=patient_ids, now=now)
    moments = np.full(len(day), now, dtype=np.int64)
    booked = ~np.isnan(day)
    moments[booked] = np.minimum((day[booked].astype(np.int64) + 1) * DAY, now)
    return moments


def last_booking_day(*, timeline: Timeline, patient_ids: np.ndarray, now: int) -> np.ndarray:
    """Day of each patient's last booking visit (next appointment or dispense) before ``now``; NaN if none."""
    pid = np.asarray(patient_ids, dtype=np.int64)
    appts = timeline.before(now).appointments
    k = last_before(pair_key(appts.pid, appts.scheduled_t), appts.pid, pid, pair_key(pid, np.full(len(pid), now)))
    day = np.full(len(pid), np.nan)
    day[k >= 0] = appts.scheduled[k[k >= 0]]
    return day


def appointment_history(appts: Appointments) -> dict[str, np.ndarray]:
    """Per scheduling visit k: what the patient's earlier appointments (j < k) looked like.

    Every earlier appointment has its return on or before visit k (visit k is itself a
    contact), so these never look past the visit that scheduled appointment k.
    """
    n = len(appts)
    i = np.arange(n)
    start = group_starts(appts.pid)
    late = np.clip(appts.days_late, 0, None)
    known = ~np.isnan(late)
    late0 = np.where(known, late, 0.0)
    interrupted = late0 > 28
    # Running sums of the lateness statistics and of the known appointments, one row each, so that every
    # window of every statistic is two gathers and a subtraction: one patient's features make a few numpy
    # calls here, not a hundred (each costs about a microsecond whatever its size).
    # In the order of _LATENESS_STATISTICS, then the count of known appointments.
    series = np.array([late0, late0 > 0, late0 > 14, interrupted, known], dtype=np.float64)
    sums = np.zeros((len(series), n + 1))
    np.cumsum(series, axis=1, out=sums[:, 1:])
    lo = np.maximum(start, i - np.array(WINDOWS)[:, None])  # (windows, n): each window's first appointment
    totals = sums[:, None, :n] - np.take(sums, lo, axis=1)  # (statistics and the count, windows, n); i is :n
    n_known = totals[-1]
    totals[0] /= np.maximum(n_known, 1)  # lateness: the mean over the known ones; the others are counts
    windowed = totals[:-1]
    windowed[:, n_known <= 0] = np.nan  # no known appointment in the window
    out: dict[str, np.ndarray] = {"days_late_last": np.where(i > start, late[np.maximum(i - 1, 0)], np.nan)}
    for w, window in enumerate(WINDOWS):
        for s, stat in enumerate(_LATENESS_STATISTICS):
            out[f"{stat}_{window}"] = windowed[s, w]
    interruptions = sums[_LATENESS_STATISTICS.index("late_gt28")]  # the running count of interrupted appointments
    out["prior_interruptions"] = interruptions[i] - interruptions[start]
    out["n_prior_appointments"] = (i - start).astype(np.float64)
    out["last_return"] = _previous_return_from_interruption(appts, interrupted, i, start)
    out.update(_dispensing(appts.supplied, i, start))
    return out


def _previous_return_from_interruption(appts: Appointments, interrupted, i, start) -> np.ndarray:
    # Running max per patient of the return day after an interruption, taken from j < k.
    # Offsetting each patient by pid << 21 keeps the running max inside the patient.
    offset = appts.pid.astype(np.int64) << 21
    marked = offset + np.where(interrupted, np.nan_to_num(appts.returned, nan=-1) + 1, 0).astype(np.int64)
    running = np.maximum.accumulate(marked) - offset - 1 if len(marked) else marked
    previous = np.where(i > start, running[np.maximum(i - 1, 0)], -1)
    return np.where(previous >= 0, previous, np.nan).astype(np.float64)


def _dispensing(supplied: np.ndarray, i: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
    dispensed = ~np.isnan(supplied)
    last = np.maximum.accumulate(np.where(dispensed, i, -1)) if len(i) else i
    n_disp = np.concatenate(([0], np.cumsum(dispensed)))
    n_mmd = np.concatenate(([0], np.cumsum(np.where(dispensed, supplied, 0) >= MULTI_MONTH_DAYS)))
    disp = n_disp[i + 1] - n_disp[start]
    share = (n_mmd[i + 1] - n_mmd[start]) / np.maximum(disp, 1)
    return {
        "days_supplied_last": np.where(last >= start, supplied[np.maximum(last, 0)], np.nan),
        "mmd_share": np.where(disp > 0, share, np.nan),
    }


def _latest(timeline: Timeline, pid, seconds, *codes: int, known_then: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each query's last observation of ``codes`` before its moment: (value, day), NaN if none.

    With ``known_then``, the last one also entered by then.
    """
    opid, ot, ovalue = timeline.of(*codes)
    if known_then:
        idx = last_entered_before(pair_key(opid, ot), opid, timeline.entered_of(*codes), pid, seconds)
    else:
        idx = last_before(pair_key(opid, ot), opid, pid, pair_key(pid, seconds))
    hit = idx >= 0
    value, day = np.full(len(idx), np.nan), np.full(len(idx), np.nan)
    value[hit], day[hit] = ovalue[idx[hit]], ot[idx[hit]] // DAY
    return value, day


def _count_between(timeline: Timeline, pid, lo_seconds, hi_seconds, code: int, where, *, known_then: bool):
    """Observations of ``code`` (``where`` their value) observed from ``lo_seconds`` to before ``hi_seconds``.

    With ``known_then``: those entered before hi, less those observed before lo; exact while nothing
    observed before lo is entered after hi (a year's gap, for the 12-month counts).
    """
    opid, ot, ovalue = timeline.of(code)
    keep = where(ovalue)
    keys = pair_key(opid[keep], ot[keep])
    # Both key arrays hold the same rows sorted by patient first, so a patient's rows start at the same index.
    ends = np.sort(pair_key(opid[keep], timeline.entered_of(code)[keep])) if known_then else keys
    hi = np.searchsorted(ends, pair_key(pid, hi_seconds), side="left")
    lo = np.searchsorted(keys, pair_key(pid, np.maximum(lo_seconds, 0)), side="left")
    return np.maximum(hi - lo, 0).astype(np.float64)


def _demographics(patients: PatientTable, pid: np.ndarray, today: np.ndarray) -> dict[str, np.ndarray]:
    rows = patients.rows_of(pid)
    months = (today - patients.art_start[rows]) / 30.4375
    return {
        "age_years": (today - patients.birth[rows]) / 365.25,
        "sex_male": patients.male[rows],
        "months_on_art": months,
        "first_6_months": np.where(np.isnan(months), np.nan, (months < 6).astype(np.float64)),
    }


def _clinical(timeline: Timeline, pid, seconds, today, male, *, known_then: bool) -> dict[str, np.ndarray]:
    vl, vl_day = _latest(timeline, pid, seconds, VIRAL_LOAD, known_then=known_then)
    vl_age = today - vl_day
    category = np.where(vl >= SUPPRESSED_BELOW, 1.0, 0.0)
    category = np.where(np.isnan(vl) | (vl_age > VL_CURRENT_DAYS), 2.0, category)
    pregnant = _recent_flag(_latest(timeline, pid, seconds, PREGNANT, known_then=known_then), today, PREGNANCY_DAYS)
    feeding = _recent_flag(
        _latest(timeline, pid, seconds, BREASTFEEDING, known_then=known_then), today, BREASTFEEDING_DAYS
    )
    year_ago = seconds - VL_CURRENT_DAYS * DAY
    return {
        "vl_category": category,
        "vl_age_days": vl_age,
        "who_stage": _latest(timeline, pid, seconds, WHO_STAGE, known_then=known_then)[0],
        "adherence": _latest(timeline, pid, seconds, ADHERENCE, known_then=known_then)[0],
        "unscheduled_visits_12m": _count_between(
            timeline, pid, year_ago, seconds, VISIT, where=lambda v: v == UNSCHEDULED, known_then=known_then
        ),
        # A woman never asked is not recorded (NaN), not "no": the model learns what an unasked question means.
        "pregnant_or_breastfeeding": np.where(male == 1, 0.0, np.fmax(pregnant, feeding)),
    }


def _recent_flag(latest: tuple[np.ndarray, np.ndarray], today, within_days: int) -> np.ndarray:
    """The latest answer (value, day) while recent, 0 once it is old, NaN if never recorded."""
    value, day = latest
    age = today - day
    return np.where(age > within_days, 0.0, value)


@dataclass(frozen=True, eq=False)  # arrays: compared and hashed by identity
class FacilityStats:
    """Facility aggregates frozen on the model version at training (training.facility_stats), as sorted arrays.

    Built once per loaded model (registry.artifact_load): turning the stored dict into arrays on every
    single prediction cost time in proportion to the number of facilities, over a millisecond for 3,000.
    """

    ids: np.ndarray  # int64, sorted
    values: dict[str, np.ndarray]  # feature name -> each facility's value, in ``ids`` order
    overall: dict[str, float]  # feature name -> the value for a facility unseen at training

    _KEYS = (("facility_iit_rate", "iit_rate"), ("facility_mean_days_late", "mean_days_late"))

    @classmethod
    def of(cls, stats: dict) -> FacilityStats:
        by_facility = stats.get("facilities", {})
        ids = np.array(sorted(int(f) for f in by_facility), dtype=np.int64)
        overall = {name: float(stats.get("overall", {}).get(key, np.nan)) for name, key in cls._KEYS}
        values = {
            name: np.array([by_facility[str(f)].get(key, overall[name]) for f in ids.tolist()], dtype=np.float64)
            for name, key in cls._KEYS
        }
        return cls(ids=ids, values=values, overall=overall)

    def columns(self, facility_ids: np.ndarray) -> dict[str, np.ndarray]:
        if not len(self.ids):
            return {name: np.full(len(facility_ids), self.overall[name]) for name, _ in self._KEYS}
        idx = np.minimum(np.searchsorted(self.ids, facility_ids), len(self.ids) - 1)
        found = self.ids[idx] == facility_ids
        return {name: np.where(found, self.values[name][idx], self.overall[name]) for name, _ in self._KEYS}
