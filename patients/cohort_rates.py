"""The rates a generated cohort produces (docs/COHORT.md tabulates them; tests hold them to ranges)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from patients.cohort import INTERRUPTION_DAYS, Cohort


def interruption_rates(cohort: Cohort, *, as_of: dt.date, window_years: float = 2.0) -> dict[str, float]:
    """How often appointments end in IIT, how many patients have one, and how many interrupters return.

    "Patients with an IIT within two years" is read two ways, and both are reported: in the last
    ``window_years`` before ``as_of`` (patients with an appointment then), and in the first
    ``window_years`` on ART (patients followed that long).
    """
    appointments = cohort.appointments[cohort.appointments["outcome"] != "censored"]
    interrupted = appointments["outcome"] == "interrupted"
    window = np.timedelta64(int(window_years * 365.25), "D")
    recent = appointments[appointments["appointment_date"] >= np.datetime64(as_of) - window]
    start = cohort.patients["art_start_date"].to_numpy()
    followed = np.flatnonzero(np.datetime64(as_of) - start > window + np.timedelta64(INTERRUPTION_DAYS, "D"))
    early = appointments[appointments["appointment_date"].to_numpy() - start[appointments["patient"]] < window]
    early = early[np.isin(early["patient"], followed)]
    return {
        "appointment_iit_rate": float(interrupted.mean()),
        "patient_iit_share": float(_any_iit(recent).mean()),
        "patient_iit_share_first_years": float(_any_iit(early).reindex(followed, fill_value=False).mean()),
        "return_share": _return_share(appointments),
    }


def record_rates(cohort: Cohort, *, as_of: dt.date) -> dict[str, float]:
    """How complete, timely and eventful the generated record is (see docs/COHORT.md for each figure)."""
    obs = cohort.observations
    visits = obs[obs["concept"] == "visit"]
    scheduled = int((visits["value_text"] == "scheduled").sum())
    status = cohort.patients["status"]
    dispensed = obs.loc[obs["concept"] == "arv_days_supplied", "value_numeric"]
    return {
        "adherence_assessed_share": _count(obs, "adherence") / scheduled,
        "who_stage_recorded_share": _count(obs, "who_stage") / scheduled,
        "patients_with_who_stage_share": obs.loc[obs["concept"] == "who_stage", "patient"].nunique()
        / len(cohort.patients),
        "vl_coverage": _vl_coverage(cohort, as_of),
        "unscheduled_visit_share": float((visits["value_text"] == "unscheduled").mean()),
        "iit_after_drop_in_share": _iit_after_drop_in_share(cohort),
        "multi_month_dispense_share": float((dispensed >= 90).mean()),
        "median_lab_entry_days": _median_entry_days(obs[obs["concept"] == "viral_load"]),
        "form_entered_late_share": _entered_late_share(obs[obs["concept"] == "adherence"]),
        "visit_entered_late_share": _entered_late_share(visits),
        "died_share": float((status == "died").mean()),
        "transferred_out_share": float((status == "transferred_out").mean()),
    }


def _any_iit(appointments: pd.DataFrame) -> pd.Series:
    return (appointments["outcome"] == "interrupted").groupby(appointments["patient"]).any()


def _return_share(appointments: pd.DataFrame) -> float:
    iit = appointments[appointments["outcome"] == "interrupted"]
    return float(iit["next_visit_date"].notna().mean()) if len(iit) else 0.0


def _count(obs: pd.DataFrame, concept: str) -> int:
    return int((obs["concept"] == concept).sum())


def _vl_coverage(cohort: Cohort, as_of: dt.date) -> float:
    """Of patients in care (a visit in the last 6 months) a year or more on ART, the share with a viral load
    result dated in the last 12 months."""
    now = np.datetime64(as_of)
    patients = cohort.patients
    obs = cohort.observations
    seen = obs.loc[(obs["concept"] == "visit") & (obs["observed_at"] >= now - np.timedelta64(183, "D")), "patient"]
    long_on_art = np.flatnonzero(now - patients["art_start_date"].to_numpy() > np.timedelta64(365, "D"))
    eligible = np.intersect1d(long_on_art, seen.unique())
    vl = obs[obs["concept"] == "viral_load"]
    recent = vl.loc[vl["observed_at"] >= now - np.timedelta64(365, "D"), "patient"]
    return float(np.isin(eligible, recent.unique()).mean()) if len(eligible) else 0.0


def _iit_after_drop_in_share(cohort: Cohort) -> float:
    """Of interrupted appointments, the share whose patient dropped in between the booking visit and the due date."""
    appts = cohort.appointments
    iit = appts[appts["outcome"] == "interrupted"]
    obs = cohort.observations
    drop_ins = obs[(obs["concept"] == "visit") & (obs["value_text"] == "unscheduled")]
    pairs = iit.reset_index().merge(drop_ins[["patient", "observed_at"]], on="patient")
    day = pairs["observed_at"].to_numpy().astype("datetime64[D]")
    inside = (day > pairs["visit_date"].to_numpy()) & (day < pairs["due_date"].to_numpy())
    return float(pairs.loc[inside, "index"].nunique() / len(iit)) if len(iit) else 0.0


def _median_entry_days(rows: pd.DataFrame) -> float:
    lag = (rows["entered_at"] - rows["observed_at"]) / pd.Timedelta(days=1)
    return float(lag.median()) if len(rows) else 0.0


def _entered_late_share(rows: pd.DataFrame) -> float:
    """Share of rows entered on a later day than the one they describe."""
    later = rows["entered_at"].to_numpy().astype("datetime64[D]") > rows["observed_at"].to_numpy().astype(
        "datetime64[D]"
    )
    return float(later.mean()) if len(rows) else 0.0
