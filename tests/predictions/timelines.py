"""Hand-built patient timelines for label and feature tests (no database needed)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from predictions.timeline import PatientTable, Timeline

START = dt.date(2024, 1, 1)


def day(offset: int) -> dt.date:
    return START + dt.timedelta(days=offset)


def visit(pid: int, offset: int, *, next_in: int | None = None, supplied: int | None = None, kind="scheduled"):
    """The rows one clinic visit writes: the visit, the next appointment, the ARV dispense."""
    rows = [obs(pid, offset, "visit", text=kind)]
    if next_in is not None:
        rows.append(obs(pid, offset, "next_appointment", date=day(offset + next_in)))
    if supplied is not None:
        rows.append(obs(pid, offset, "arv_days_supplied", number=supplied))
    return rows


def obs(
    pid: int, offset: int, concept: str, *, number=None, text=None, date=None, hour: int = 9, entered: int | None = None
) -> dict:
    """One observation on day ``offset``; ``entered``: the day (offset) it was entered, if later."""
    observed = dt.datetime.combine(day(offset), dt.time(hour), tzinfo=dt.UTC)
    return {
        "patient_id": pid,
        "concept": concept,
        "observed_at": observed,
        "entered_at": observed if entered is None else dt.datetime.combine(day(entered), dt.time(hour), tzinfo=dt.UTC),
        "value_numeric": number,
        "value_text": text,
        "value_date": date,
    }


def timeline(*row_lists) -> Timeline:
    rows = [row for rows in row_lists for row in rows]
    return Timeline.from_raw(pd.DataFrame(rows))


def patients(*specs: dict) -> PatientTable:
    base = {
        "facility_id": 1,
        "sex": "F",
        "birth_date": dt.date(1990, 1, 1),
        "art_start_date": dt.date(2020, 1, 1),
        "status": "active",
        "status_date": None,
    }
    return PatientTable.from_frame(pd.DataFrame([{**base, **spec} for spec in specs]))
