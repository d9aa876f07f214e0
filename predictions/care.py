"""Where each patient stands in care on a day, derived from the record, never typed by hand.

A patient's open appointment is the one booked at their last booking visit (the last day a
next appointment or an ARV dispense was recorded).  It falls due on the later of the booked
date and the day the drugs run out, the ``due`` the IIT label counts from, and it stays open
until the return the label recognises (``timeline.return_day``).  Counted to ``today``:

* ``in_care``: not past due (due today or later);
* ``late``: 1-28 days past due;
* ``interrupted``: more than 28 days past due without a return: an IIT, by the label's rule.

A contact on or after the due date that books nothing (a visit recorded without a next
appointment) returns the patient from that appointment but leaves them with none: they are
counted as due from that contact.  A patient with no booking visit has no appointment to be
late for (``in_care``, with no dates): there is nothing yet to predict for them.  The recorded
statuses ``died``, ``transferred_out`` and ``stopped`` override all of this (``Patient.status``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictions.timeline import DAY, ENCOUNTER_CONCEPTS, IIT_GRACE_DAYS, Timeline, last_before, pair_key, take

IN_CARE, LATE, INTERRUPTED = "in_care", "late", "interrupted"
CARE_STATES: tuple[str, ...] = (IN_CARE, LATE, INTERRUPTED)
AT_RISK: tuple[str, ...] = (IN_CARE, LATE)  # the patients a prediction is for: scored and listed


@dataclass(frozen=True)
class Schedules:
    """Each patient's open appointment, in days since the epoch (NaN where there is none)."""

    last_booking: np.ndarray  # the day of the last booking visit
    booked: np.ndarray  # the next-appointment date booked then
    drugs_run_out: np.ndarray  # that day + the days of drugs dispensed then
    due: np.ndarray  # the later of the two: the day the appointment falls due
    overdue_from: np.ndarray  # due, or the day of a later contact that booked nothing
    last_contact: np.ndarray  # the last day with any clinical contact (visit, booking or dispense)

    def days_overdue(self, today: int) -> np.ndarray:
        """Days past due on ``today`` (0 when not yet due; NaN without a booking)."""
        return np.maximum(today - self.overdue_from, 0.0)

    def states(self, today: int) -> np.ndarray:
        """``in_care``, ``late`` or ``interrupted`` for each patient on ``today`` (an object array)."""
        overdue = np.nan_to_num(self.days_overdue(today), nan=0.0)
        code = (overdue > 0).astype(np.int64) + (overdue > IIT_GRACE_DAYS)
        return np.array(CARE_STATES, dtype=object)[code]

    def at_risk(self, today: int) -> np.ndarray:
        """Whether each patient is one a prediction is for on ``today``: booked, and in care or late."""
        return ~np.isnan(self.due) & np.isin(self.states(today), AT_RISK)


def schedules_of(*, timeline: Timeline, patient_ids: np.ndarray, now: int) -> Schedules:
    """Each patient's open appointment as the record shows it at ``now`` (epoch seconds)."""
    pid = np.asarray(patient_ids, dtype=np.int64)
    seen = timeline.before(now)
    appts = seen.appointments
    k = last_before(pair_key(appts.pid, appts.scheduled_t), appts.pid, pid, pair_key(pid, np.full(len(pid), now)))
    hit = k >= 0
    column = {name: np.full(len(pid), np.nan) for name in ("scheduled", "booked", "supplied", "due", "returned")}
    for name, values in column.items():
        values[hit] = getattr(appts, name)[k[hit]]
    contact_pid, contact_t, _ = seen.of(*ENCOUNTER_CONCEPTS)
    last = last_before(pair_key(contact_pid, contact_t), contact_pid, pid, pair_key(pid, np.full(len(pid), now)))
    last_contact = take(contact_t // DAY, last)
    return Schedules(
        last_booking=column["scheduled"],
        booked=column["booked"],
        drugs_run_out=column["scheduled"] + column["supplied"],
        due=column["due"],
        overdue_from=np.fmax(column["due"], column["returned"]),
        last_contact=last_contact,
    )
