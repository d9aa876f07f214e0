"""Per-facility workload and yield: each resolved week, how many patients each tier held and what tracing
down to each tier's cut-off would have found.

The unit is a patient in a week: the week's appointments whose outcome is resolved (interrupted or
retained), each with the last prediction made before it (as the AUC evaluation counts them: a prediction
made once the outcome was settled tests no foresight and is left out), and one appointment per patient
and week, the earliest (a refill a few days after a visit is the same patient to trace). A tier's cut-off
flags every patient in that tier or above:

* sensitivity = flagged patients who interrupted / all who interrupted (None with no interruption)
* PPV = flagged patients who interrupted / flagged patients (None with nobody flagged)

A week runs Monday to Sunday; it is resolved once its Sunday is 28 days past (the IIT grace), so the
newest resolved week ends at least four weeks ago. The predictions of every model version count: this is
what the facility's list said at the time.

The nightly ``score_all`` stores a prediction per at-risk patient, so a week's appointments carry tens of
predictions each: the daily ``health_report`` job (in the worker) computes the last ``REPORTED_WEEKS``
weeks and stores them in its report, which the console's Workload page reads.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from monitoring.evaluation.selectors import OUTCOME_SETTLED
from predictions.models import Prediction
from predictions.tiers import CUT_TIERS, TIERS

WEEK = dt.timedelta(days=7)
REPORTED_WEEKS = 4


def resolved_weeks(*, today: dt.date, weeks: int) -> list[dt.date]:
    """The Mondays of the ``weeks`` newest weeks whose outcomes are all resolved by ``today``, newest first."""
    last_due = today - OUTCOME_SETTLED
    last_sunday = last_due - dt.timedelta(days=(last_due.weekday() + 1) % 7)
    newest = last_sunday - dt.timedelta(days=6)
    return [newest - k * WEEK for k in range(weeks)]


def facility_workload(*, today: dt.date, weeks: int) -> list[dict]:
    """One row per (week, facility) with patients, newest week first, facilities by code:

    {"week": Monday, "facility": code, "patients": n, "interruptions": n, "tiers": {tier: n, ...},
     "cutoffs": [{"tier", "flagged", "found", "sensitivity", "ppv"}, ...]} (cut-offs highest tier first).
    """
    mondays = resolved_weeks(today=today, weeks=weeks)
    if not mondays:
        return []
    patients = _patients_by_week(start=mondays[-1], end=mondays[0] + dt.timedelta(days=6))
    groups: dict[tuple, list[tuple[str, bool]]] = defaultdict(list)
    for (week, _patient), (facility, tier, interrupted) in patients.items():
        groups[(week, facility)].append((tier, interrupted))
    rows = [_row(week, facility, members) for (week, facility), members in groups.items()]
    return sorted(rows, key=lambda row: (-row["week"].toordinal(), row["facility"]))


def _patients_by_week(*, start: dt.date, end: dt.date) -> dict[tuple, tuple[str, str, bool]]:
    """{(Monday, patient): (facility code, tier, interrupted)} from each patient's earliest resolved appointment
    of the week, scored by the last prediction made before its outcome was settled."""
    rows = (
        Prediction.objects.filter(
            outcome__in=(Prediction.Outcome.IIT, Prediction.Outcome.RETAINED), appointment_date__range=(start, end)
        )
        .order_by("patient_id", "appointment_date", "created_at", "id")
        .values_list("patient_id", "appointment_date", "as_of", "risk_level", "outcome", "facility__code")
    )
    last: dict[tuple, tuple] = {}  # (patient, appointment) -> its last prediction, by the ordering above
    for patient, appointment, as_of, tier, outcome, facility in rows.iterator(chunk_size=20_000):
        if appointment is not None and as_of.date() <= appointment + OUTCOME_SETTLED:
            last[(patient, appointment)] = (facility, tier, outcome == Prediction.Outcome.IIT)
    by_week: dict[tuple, tuple[str, str, bool]] = {}
    for (patient, appointment), scored in sorted(last.items()):  # earliest appointment of a week first
        by_week.setdefault((appointment - dt.timedelta(days=appointment.weekday()), patient), scored)
    return by_week


def _row(week: dt.date, facility: str, members: list[tuple[str, bool]]) -> dict:
    counts = {tier: sum(1 for t, _ in members if t == tier) for tier in TIERS[::-1]}
    interruptions = sum(1 for _, interrupted in members if interrupted)
    cutoffs = []
    for tier in CUT_TIERS[::-1]:
        reached = set(TIERS[TIERS.index(tier) :])
        flagged = [interrupted for t, interrupted in members if t in reached]
        found = sum(flagged)
        cutoffs.append(
            {
                "tier": tier,
                "flagged": len(flagged),
                "found": found,
                "sensitivity": found / interruptions if interruptions else None,
                "ppv": found / len(flagged) if flagged else None,
            }
        )
    return {
        "week": week,
        "facility": facility,
        "patients": len(members),
        "interruptions": interruptions,
        "tiers": counts,
        "cutoffs": cutoffs,
    }
