"""A patient's record as sorted numpy arrays, and the appointments derived from it.

Labels and features both start here so that "an appointment", "a return" and
"days late" mean the same thing in training, in scoring and in outcome
resolution.  Everything is vectorized over all patients at once: arrays are
sorted by (patient, time) and per-patient quantities use group boundaries,
cumulative sums and ``searchsorted`` instead of a per-patient loop.

Encoding (one float ``value`` per observation):
  * numeric concepts: the number;
  * dates (next appointment): days since 1970-01-01;
  * coded: ``TEXT_CODES`` (scheduled 0 / unscheduled 1, good 0 / fair 1 / poor 2);
  * booleans: 0/1.
Times ``t`` are whole seconds since the epoch (UTC); ``day = t // 86400``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from patients import concepts as c

DAY = 86_400
IIT_GRACE_DAYS = 28

# Only the concepts the model reads are loaded; the rest never leave the database.
CONCEPT_CODES: dict[str, int] = {
    c.VISIT: 0,
    c.NEXT_APPOINTMENT: 1,
    c.ARV_DAYS_SUPPLIED: 2,
    c.VIRAL_LOAD: 3,
    c.WHO_STAGE: 4,
    c.ADHERENCE: 5,
    c.PREGNANT: 6,
    c.BREASTFEEDING: 7,
}
VISIT, NEXT_APPOINTMENT, DISPENSE, VIRAL_LOAD, WHO_STAGE, ADHERENCE, PREGNANT, BREASTFEEDING = range(8)
TEXT_CODES: dict[str, int] = {"scheduled": 0, "unscheduled": 1, "good": 0, "fair": 1, "poor": 2}
UNSCHEDULED = 1
# A clinical contact: any of these recorded on a day means the patient was seen that day.
ENCOUNTER_CONCEPTS = (VISIT, NEXT_APPOINTMENT, DISPENSE)
# A contact that carries the patient's care forward: a new appointment booked or drugs dispensed.
BOOKING_CONCEPTS = (NEXT_APPOINTMENT, DISPENSE)

STATUS_CODES = {"active": 0, "transferred_out": 1, "died": 2, "stopped": 3}
EXCLUDING_STATUSES = (STATUS_CODES["transferred_out"], STATUS_CODES["died"])

_EPOCH = np.datetime64("1970-01-01", "D")


def pair_key(pid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One sortable int64 per (patient, seconds): exact, so ``<`` on keys is ``<`` on times."""
    return (pid.astype(np.int64) << 32) | t.astype(np.int64)


def day_of(value: dt.date | dt.datetime | None) -> float:
    if value is None or value is pd.NaT:
        return np.nan
    if isinstance(value, dt.datetime):
        value = value.date()
    return float((np.datetime64(value, "D") - _EPOCH).astype(np.int64))


def seconds_of(moment: dt.datetime | dt.date) -> int:
    """Epoch seconds of an aware datetime, or of the midnight (UTC) starting a date."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time(), tzinfo=dt.UTC)
    return int(moment.timestamp())


def group_starts(pid: np.ndarray) -> np.ndarray:
    """For an array sorted by patient: the index where each element's patient begins."""
    n = len(pid)
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        is_start[1:] = pid[1:] != pid[:-1]
    return np.maximum.accumulate(np.where(is_start, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)


def last_before(keys: np.ndarray, pids: np.ndarray, query_pid: np.ndarray, query_key: np.ndarray) -> np.ndarray:
    """Index of each query's patient's last row with key < query key, or -1."""
    idx = np.searchsorted(keys, query_key, side="left") - 1
    ok = idx >= 0
    ok[ok] = pids[idx[ok]] == query_pid[ok]
    return np.where(ok, idx, -1)


def _seconds(moments: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(moments, utc=True)
    return (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def last_entered_before(
    keys: np.ndarray, pids: np.ndarray, entered: np.ndarray, query_pid: np.ndarray, query_seconds: np.ndarray
) -> np.ndarray:
    """``last_before`` by observation time, passing over rows not yet entered at each query's moment.

    ``keys`` are (patient, observed) keys and ``entered`` the rows' entry times. Steps back one row at a
    time for the queries whose candidate was entered too late: as many steps as the longest run of rows
    observed but not yet entered, a few at most for results that come back days or weeks later.
    """
    idx = last_before(keys, pids, query_pid, pair_key(query_pid, query_seconds))
    pending = np.flatnonzero(idx >= 0)
    pending = pending[entered[idx[pending]] >= query_seconds[pending]]
    while len(pending):
        earlier = idx[pending] - 1
        same = earlier >= 0
        same[same] = pids[earlier[same]] == query_pid[pending[same]]
        idx[pending] = np.where(same, earlier, -1)
        pending = pending[same]
        pending = pending[entered[idx[pending]] >= query_seconds[pending]]
    return idx


def take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] as float, NaN where idx is -1."""
    out = np.full(len(idx), np.nan)
    hit = idx >= 0
    out[hit] = values[idx[hit]]
    return out


@dataclass(frozen=True)
class Timeline:
    """Observations sorted by (patient, time): pid, concept code, t (s), value, created (µs), entered (s).

    ``t`` is when a fact was observed, ``entered`` when the EMR recorded it (never before ``t``), and
    ``created`` when this service received it (what staleness and caching compare).  A training row as
    of a moment sees an observation only if it was both observed and entered before that moment.
    """

    pid: np.ndarray
    concept: np.ndarray
    t: np.ndarray
    value: np.ndarray
    created: np.ndarray
    entered: np.ndarray
    # Rows per concept set and the appointments, computed once: features ask for them several times.
    _subsets: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, pid, concept, t, value, created=None, entered=None) -> Timeline:
        """``entered`` defaults to ``t`` (entered when observed)."""
        pid = np.asarray(pid, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        order = np.argsort(pair_key(pid, t), kind="stable")
        created = np.zeros(len(pid), dtype=np.int64) if created is None else np.asarray(created, dtype=np.int64)
        entered = t if entered is None else np.maximum(np.asarray(entered, dtype=np.int64), t)
        return cls(
            pid=pid[order],
            concept=np.asarray(concept, dtype=np.int8)[order],
            t=t[order],
            value=np.asarray(value, dtype=np.float64)[order],
            created=created[order],
            entered=entered[order],
        )

    @classmethod
    def from_encoded(cls, frame: pd.DataFrame) -> Timeline:
        """From the loader's frame: patient_id, concept (code), t, value[, created][, entered]."""
        created = frame["created"].to_numpy() if "created" in frame else None
        entered = frame["entered"].to_numpy() if "entered" in frame else None
        return cls.from_arrays(frame["patient_id"], frame["concept"], frame["t"], frame["value"], created, entered)

    @classmethod
    def from_raw(cls, frame: pd.DataFrame) -> Timeline:
        """From database-shaped rows: patient_id, concept (str), observed_at, value_numeric/_text/_date, entered_at?"""
        frame = frame[frame["concept"].isin(CONCEPT_CODES)]
        t = _seconds(frame["observed_at"])
        entered = _seconds(frame["entered_at"]) if "entered_at" in frame else None
        value = pd.to_numeric(frame.get("value_numeric"), errors="coerce")
        if "value_date" in frame:
            days = (pd.to_datetime(frame["value_date"]) - pd.Timestamp(0)) // pd.Timedelta(days=1)
            value = value.fillna(days.astype("float64"))
        if "value_text" in frame:
            value = value.fillna(frame["value_text"].map(TEXT_CODES).astype("float64"))
        concept = frame["concept"].map(CONCEPT_CODES)
        return cls.from_arrays(frame["patient_id"], concept, t, value, entered=entered)

    def __len__(self) -> int:
        return len(self.pid)

    def before(self, seconds: int, *, entered: bool = False) -> Timeline:
        """Only what was observed strictly before ``seconds``; with ``entered``, also entered before it (known then).

        Labels read outcomes with the observed cut (the fullest knowledge of what happened); a training
        row's features read only what the clinic knew at its moment.
        """
        keep = (self.t < seconds) & (self.entered < seconds) if entered else self.t < seconds
        if keep.all():
            return self
        fields = ("pid", "concept", "t", "value", "created", "entered")
        return Timeline(*(getattr(self, f)[keep] for f in fields))

    def entered_of(self, *codes: int) -> np.ndarray:
        """The entry times of ``of(*codes)``'s rows, in the same order."""
        key = ("entered", codes)
        found = self._subsets.get(key)
        if found is None:
            wanted = np.zeros(len(CONCEPT_CODES), dtype=bool)
            wanted[list(codes)] = True
            found = self._subsets[key] = self.entered[wanted[self.concept]]
        return found

    def of(self, *codes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pid, t, value) of the observations of these concepts, still sorted by (patient, time)."""
        subset = self._subsets.get(codes)
        if subset is None:
            wanted = np.zeros(len(CONCEPT_CODES), dtype=bool)
            wanted[list(codes)] = True
            mask = wanted[self.concept]  # a table look-up: far cheaper than np.isin on small arrays
            subset = self._subsets[codes] = (self.pid[mask], self.t[mask], self.value[mask])
        return subset

    @property
    def appointments(self) -> Appointments:
        """``appointments_of(self)``, worked out once: scoring moments and features both start from it."""
        found = self._subsets.get("appointments")
        if found is None:
            found = self._subsets["appointments"] = appointments_of(self)
        return found


@dataclass(frozen=True)
class Appointments:
    """One row per (patient, day) on which a next appointment or an ARV dispense was recorded.

    ``due`` is the later of the booked next-appointment date (``booked``) and dispense day + days supplied
    (the day the drugs run out);
    ``returned`` the day the appointment was returned from (``return_day``; NaN if not yet).
    """

    pid: np.ndarray
    scheduled_t: np.ndarray  # last scheduling observation of the day (s)
    scheduled: np.ndarray  # day
    due: np.ndarray  # day
    booked: np.ndarray  # the next-appointment date booked that day, NaN if only drugs were dispensed
    supplied: np.ndarray  # days supplied that day, NaN without a dispense
    returned: np.ndarray  # day, NaN if no later contact in the data

    def __len__(self) -> int:
        return len(self.pid)

    @property
    def days_late(self) -> np.ndarray:
        return self.returned - self.due


def appointments_of(timeline: Timeline) -> Appointments:
    pid, t, value = timeline.of(NEXT_APPOINTMENT, DISPENSE)
    scheduling = np.zeros(len(CONCEPT_CODES), dtype=bool)
    scheduling[[NEXT_APPOINTMENT, DISPENSE]] = True
    is_dispense = timeline.concept[scheduling[timeline.concept]] == DISPENSE
    day = t // DAY
    candidate = np.where(is_dispense, day + value, value)
    key = (pid << 20) | day
    if len(key) == 0:
        empty = np.zeros(0)
        return Appointments(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    due = np.maximum.reduceat(np.nan_to_num(candidate, nan=-np.inf), starts)
    supplied = np.maximum.reduceat(np.where(is_dispense, value, -np.inf), starts)
    booked = np.maximum.reduceat(np.where(is_dispense, -np.inf, np.nan_to_num(value, nan=-np.inf)), starts)
    scheduled_t = np.maximum.reduceat(t, starts)
    appts_pid, appts_day = pid[starts], day[starts]
    due = np.where(np.isfinite(due), due, np.nan)
    return Appointments(
        pid=appts_pid,
        scheduled_t=scheduled_t,
        scheduled=appts_day.astype(np.float64),
        due=due,
        booked=np.where(np.isfinite(booked), booked, np.nan),
        supplied=np.where(np.isfinite(supplied), supplied, np.nan),
        returned=return_day(timeline, appts_pid, from_day=appts_day + 1, due=due),
    )


def return_day(timeline: Timeline, pid: np.ndarray, *, from_day: np.ndarray, due: np.ndarray) -> np.ndarray:
    """Day each patient returned from an appointment due on ``due`` and booked before ``from_day`` (NaN if not yet).

    THE return rule: the earlier of the first contact from ``from_day`` on that books a new
    appointment or dispenses drugs, and the first clinical contact of any kind on or after the
    due date.  A contact before the due date that does neither (a drop-in, a result collected)
    leaves the appointment open: two patients booked for day 90 who never come back interrupt
    alike whether or not one dropped in on day 30.
    """
    booked = _first_from(timeline, BOOKING_CONCEPTS, pid, from_day)
    seen = _first_from(timeline, ENCOUNTER_CONCEPTS, pid, np.fmax(from_day, due))
    return np.fmin(booked, seen)


def _first_from(timeline: Timeline, codes: tuple[int, ...], pid: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Day of each patient's first observation of ``codes`` on or after ``day`` (NaN if none)."""
    cpid, ct, _ = timeline.of(*codes)
    if not len(ct):
        return np.full(len(pid), np.nan)
    keys = pair_key(cpid, ct)
    idx = np.searchsorted(keys, pair_key(pid, np.asarray(day, dtype=np.int64) * DAY), side="left")
    ok = idx < len(keys)
    ok[ok] = cpid[idx[ok]] == pid[ok]
    return np.where(ok, ct[np.where(ok, idx, 0)] // DAY, np.nan).astype(np.float64)


@dataclass(frozen=True)
class PatientTable:
    """Patients sorted by id: facility, sex, dates as days, status code."""

    id: np.ndarray
    facility_id: np.ndarray
    male: np.ndarray
    birth: np.ndarray
    art_start: np.ndarray
    status: np.ndarray
    status_day: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> PatientTable:
        """Columns: patient_id, facility_id, sex (F/M), birth_date, art_start_date, status, status_date."""
        frame = frame.sort_values("patient_id")

        def days(column: str) -> np.ndarray:
            values = pd.to_datetime(frame[column])
            return ((values - pd.Timestamp(0)) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64, na_value=np.nan)

        return cls(
            id=frame["patient_id"].to_numpy(dtype=np.int64),
            facility_id=frame["facility_id"].to_numpy(dtype=np.int64),
            male=(frame["sex"] == "M").to_numpy(dtype=np.float64),
            birth=days("birth_date"),
            art_start=days("art_start_date"),
            status=frame["status"].map(STATUS_CODES).to_numpy(dtype=np.int64),
            status_day=days("status_date"),
        )

    def take(self, keep: np.ndarray) -> PatientTable:
        """The patients of the rows ``keep`` selects (a boolean mask), still sorted by id."""
        return PatientTable(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def rows_of(self, pid: np.ndarray) -> np.ndarray:
        """Row of each patient id (ids must be present)."""
        idx = np.searchsorted(self.id, pid)
        if len(pid) and (
            idx.max(initial=0) >= len(self.id) or (self.id[np.minimum(idx, len(self.id) - 1)] != pid).any()
        ):
            raise KeyError("observations for a patient missing from the patient table")
        return idx
