"""THE label: did a scheduled appointment end in an interruption in treatment (IIT)?

PEPFAR's definition: for an appointment due on day D, the patient interrupted
if they had not returned by D + 28.  They return at the first clinical contact
(visit, booking or ARV dispense) on or after D, or earlier at a contact that
books a new appointment or dispenses drugs (which then carries care on); a
contact before D that does neither does not count (``timeline.return_day``).
An appointment whose D + 28 is after the data's as-of date is unresolved; a
patient who died or transferred out on or before D + 28 is excluded (they did
not interrupt).

The same rule labels training data (``label_appointments``) and resolves the
outcome of live predictions (``resolve_outcomes``), so the model is monitored
against exactly what it was trained to predict.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from predictions.timeline import (
    DAY,
    EXCLUDING_STATUSES,
    IIT_GRACE_DAYS,
    PatientTable,
    Timeline,
    appointments_of,
    day_of,
    return_day,
)

IIT, RETAINED, UNRESOLVED, EXCLUDED = "iit", "retained", "unresolved", "excluded"
_OUTCOMES = np.array([RETAINED, IIT, UNRESOLVED, EXCLUDED], dtype=object)


def outcome_codes(
    *,
    due: np.ndarray,
    returned: np.ndarray,
    status: np.ndarray,
    status_day: np.ndarray,
    as_of_day: float,
) -> np.ndarray:
    """0 retained, 1 IIT, 2 unresolved, 3 excluded — one per appointment."""
    deadline = due + IIT_GRACE_DAYS
    code = np.where(np.isnan(returned) | (returned > deadline), 1, 0)
    code = np.where(deadline > as_of_day, 2, code)
    left_care = np.isin(status, EXCLUDING_STATUSES) & ~(status_day > deadline)
    return np.where(left_care | np.isnan(due), 3, code)


def label_appointments(*, timeline: Timeline, patients: PatientTable, as_of: dt.date) -> pd.DataFrame:
    """Every appointment in the data with its label, as known at the end of ``as_of``.

    Columns: patient_id, scheduled_t (s), scheduled (date), due (date), returned (date or NaT),
    days_late (returned - due, NaN if no return), days_supplied, label (iit/retained/unresolved/excluded).
    """
    as_of_day = day_of(as_of)
    appts = appointments_of(timeline.before(int(as_of_day + 1) * DAY))
    rows = patients.rows_of(appts.pid)
    code = outcome_codes(
        due=appts.due,
        returned=appts.returned,
        status=patients.status[rows],
        status_day=patients.status_day[rows],
        as_of_day=as_of_day,
    )
    return pd.DataFrame(
        {
            "patient_id": appts.pid,
            "scheduled_t": appts.scheduled_t,
            "scheduled": _dates(appts.scheduled),
            "due": _dates(appts.due),
            "returned": _dates(appts.returned),
            "days_late": appts.days_late,
            "days_supplied": appts.supplied,
            "label": _OUTCOMES[code],
        }
    )


def resolve_outcomes(
    *,
    predictions: pd.DataFrame,
    timeline: Timeline,
    patients: PatientTable,
    as_of: dt.date,
) -> pd.Series:
    """The outcome of each prediction (frame: patient_id, as_of (aware datetime), appointment_date).

    A prediction stands for its patient's next appointment, booked on the day of its
    moment: it resolves by the same return rule as a training row, with contacts
    counted from the next day.
    Returns a Series aligned to ``predictions.index`` with values
    iit / retained / pending / excluded (no appointment, died or transferred out).
    """
    if predictions.empty:
        return pd.Series([], index=predictions.index, dtype=object)
    as_of_day = day_of(as_of)
    timeline = timeline.before(int(as_of_day + 1) * DAY)
    pid = predictions["patient_id"].to_numpy(dtype=np.int64)
    moment = pd.to_datetime(predictions["as_of"], utc=True)
    seconds = ((moment - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    due = _days(predictions["appointment_date"])
    booking_day = (seconds - 1) // DAY  # the last day the prediction saw, as in features.compute_features
    rows = patients.rows_of(pid)
    code = outcome_codes(
        due=due,
        returned=return_day(timeline, pid, from_day=booking_day + 1, due=due),
        status=patients.status[rows],
        status_day=patients.status_day[rows],
        as_of_day=as_of_day,
    )
    return pd.Series(np.array(["retained", "iit", "pending", "excluded"], dtype=object)[code], index=predictions.index)


def _dates(days: np.ndarray) -> pd.Series:
    return pd.to_datetime(days, unit="D")


def _days(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values)
    return ((stamps - pd.Timestamp(0)) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64, na_value=np.nan)
