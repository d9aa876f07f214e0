"""A synthetic ART cohort: pure, reproducible, vectorised.

``generate_cohort`` returns DataFrames and touches no database; the writer in
``patients.cohort_writer`` puts them in the tables.  The simulation walks all
patients forward one visit at a time (numpy arrays over patients, one loop
iteration per visit number), because whether someone is late depends on how
late they were before.

Lateness at each scheduled appointment comes from an ordinal logit with four
categories: on time, 1-14 days late, 15-28 days late, and over 28 days
(an interruption in treatment, IIT), counted from the due date to the next
scheduled visit exactly as the model's IIT label counts it: an unscheduled
visit before the due date books nothing, so it is never the return.  Its log-odds rise with past lateness
(strongest), the first 6 months on ART, age 15-24, male sex, an unsuppressed
or missing viral load, poor adherence, a short supply of drugs, and two hidden
effects a model can only approximate: the facility and the person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

EPOCH = dt.date(1970, 1, 1)
NEVER = np.iinfo(np.int64).max // 4  # a day number no one reaches

LATE_CATEGORIES = ("on_time", "late_1_14", "late_15_28", "interrupted")
INTERRUPTION_DAYS = 28
RETURN_PROBABILITY = 0.85
SUPPLY_DAYS = np.array([30, 60, 90, 180])
REGIMENS = np.array(["TDF/3TC/DTG", "TDF/3TC/EFV", "ABC/3TC/DTG", "AZT/3TC/NVP"])
REGIMEN_WEIGHTS = np.array([0.78, 0.12, 0.06, 0.04])
REGIONS = (("Central", "Kiambu"), ("Coast", "Mombasa"), ("Nyanza", "Kisumu"), ("Rift Valley", "Nakuru"))

# Ordinal-logit thresholds: P(category >= k) = sigmoid(risk + THRESHOLDS[k-1]).
THRESHOLDS = np.array([-2.3, -3.9, -4.43])
PAST_LATENESS_EFFECT = np.array([0.0, 0.5, 0.9, 1.4])  # by the previous appointment's category


@dataclass(frozen=True)
class Cohort:
    """The generated tables.  ``patients.patient`` and ``observations.patient`` are row positions."""

    facilities: pd.DataFrame  # code, name, region, district
    patients: pd.DataFrame  # facility (code), identifier, sex, birth_date, art_start_date, enrollment_date,
    #                         status, status_date
    observations: pd.DataFrame  # patient, concept, observed_at, value_numeric, value_text, value_date
    # patient, visit_date, appointment_date (booked), due_date (later of booked and drugs running out),
    # next_visit_date, days_late (from due_date), outcome
    appointments: pd.DataFrame


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def _dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype="int64").astype("datetime64[D]")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _choose(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probabilities`` (rows sum to 1)."""
    u = rng.random(len(probabilities))[:, None]
    return (u > np.cumsum(probabilities, axis=1)[:, :-1]).sum(axis=1)


def generate_cohort(
    *,
    facilities: int,
    patients: int,
    seed: int,
    as_of: dt.date,
    years: float = 5.0,
    facility_prefix: str = "SYN-",
    progress: bool = False,
) -> Cohort:
    """Simulate ``patients`` people on ART across ``facilities`` clinics up to ``as_of``.  Same arguments, same data."""
    if facilities < 1 or patients < 1 or years <= 0:
        raise ValueError("facilities, patients and years must be positive")
    rng = np.random.default_rng(seed)
    people = _draw_people(rng, facilities=facilities, patients=patients, end=day_number(as_of), years=years)
    # History ends the day before as_of, so nothing is recorded later than "now" when as_of is today.
    with tqdm(total=patients, desc="simulating", unit="patient", disable=not progress) as bar:
        visits, appointments, status, status_day = _simulate(rng, people, end=day_number(as_of) - 1, bar=bar)
    facility_frame = _facility_frame(facilities, facility_prefix)
    patient_frame = _patient_frame(people, facility_frame, status, status_day)
    observation_frame = _observation_frame(rng, visits, people)
    return Cohort(facility_frame, patient_frame, observation_frame, appointments)


# --- the people -------------------------------------------------------------


def _draw_people(rng: np.random.Generator, *, facilities: int, patients: int, end: int, years: float) -> dict:
    sizes = rng.dirichlet(np.full(facilities, 4.0))
    facility = np.sort(rng.choice(facilities, size=patients, p=sizes))
    young = rng.random(patients) < 0.2
    age_at_start = np.where(young, rng.uniform(15, 25, patients), np.minimum(25 + rng.gamma(2.5, 6.0, patients), 75))
    art_start = end - rng.integers(30, int(years * 365.25), patients)
    female = rng.random(patients) < 0.62
    return {
        "n": patients,
        "facility": facility,
        "facility_effect": _centred(rng.normal(0.0, 0.35, facilities))[facility],
        "frailty": rng.normal(0.0, 1.0, patients),
        "female": female,
        "art_start": art_start,
        "enrollment": art_start - np.where(rng.random(patients) < 0.6, rng.integers(0, 45, patients), 0),
        "birth": art_start - (age_at_start * 365.25).astype(np.int64),
        "regimen": REGIMENS[rng.choice(len(REGIMENS), size=patients, p=REGIMEN_WEIGHTS)],
        "base_weight": np.clip(rng.normal(np.where(female, 58, 64), 10), 35, 130),
        "base_stage": rng.choice([1, 2, 3, 4], size=patients, p=[0.45, 0.27, 0.19, 0.09]),
        "base_cd4": np.clip(rng.lognormal(np.log(320), 0.7, patients), 5, 1500).round(),
    }


def _centred(effects: np.ndarray) -> np.ndarray:
    """Facility effects sum to zero, so the cohort-wide rates do not hinge on a handful of draws."""
    return effects - effects.mean()


# --- the visits -------------------------------------------------------------


def _simulate(rng: np.random.Generator, people: dict, *, end: int, bar: tqdm):
    """Walk every patient from ART start to ``end``; return visit and appointment records and final statuses.

    1. At each patient's current visit: assess adherence, draw a viral load if one is due, dispense drugs.
    2. Maybe an unscheduled visit before the appointment, maybe death or transfer out before it.
    3. Draw lateness for the appointment; the next visit is the appointment plus that lateness
       (an interrupter returns with probability 0.85, after a long gap).
    4. Patients whose next visit falls after ``end`` leave the loop.
    """
    n = people["n"]
    state = {
        "day": people["art_start"].copy(),
        "prev_cat": np.zeros(n, np.int64),
        "late_count": np.zeros(n, np.int64),
        "appointments": np.zeros(n, np.int64),
        "last_vl": np.full(n, np.nan),
        "last_vl_day": np.full(n, -NEVER),
        "next_vl_day": people["art_start"] + rng.integers(170, 200, n),
        "weight": people["base_weight"].copy(),
    }
    status = np.zeros(n, np.int64)  # 0 active, 1 transferred out, 2 died
    status_day = np.full(n, -1, np.int64)
    visits, appointments = [], []
    active = np.ones(n, bool)
    while active.any():
        idx = np.flatnonzero(active)
        visit = _visit(rng, people, state, idx)
        visits.append(visit)
        appt, outcome = _next_appointment(rng, people, state, idx, visit, end=end)
        visits.extend(outcome.pop("unscheduled"))
        appointments.append(appt)
        status[idx] = np.where(outcome["event"] > 0, outcome["event"], status[idx])
        status_day[idx] = np.where(outcome["event"] > 0, outcome["event_day"], status_day[idx])
        state["day"][idx] = outcome["next_day"]
        active[idx] = outcome["next_day"] <= end
        bar.update(len(idx) - int(active[idx].sum()))
    visit_frame = pd.concat([pd.DataFrame(v) for v in visits], ignore_index=True)
    return visit_frame, _appointment_frame(appointments), status, status_day


def _visit(rng: np.random.Generator, people: dict, state: dict, idx: np.ndarray) -> dict:
    """A scheduled visit for patients ``idx`` on ``state['day'][idx]``: adherence, labs, dispense."""
    day = state["day"][idx]
    m = len(idx)
    on_art_days = day - people["art_start"][idx]
    frailty = people["frailty"][idx]
    adherence_score = 0.75 * frailty + 0.5 * (state["prev_cat"][idx] >= 2) + rng.normal(0, 0.8, m)
    adherence = np.digitize(adherence_score, [0.9, 1.7])  # 0 good, 1 fair, 2 poor
    vl = _viral_load(rng, state, idx, day, adherence, frailty)
    supply = _supply(rng, state, idx, adherence, on_art_days)
    state["weight"][idx] = np.clip(state["weight"][idx] + rng.normal(0.05, 0.8, m) + 0.4 * (on_art_days < 365), 30, 200)
    first = on_art_days == 0
    return {
        "patient": idx,
        "day": day,
        "kind": "scheduled",
        "supply": supply,
        "appointment": day + supply + rng.integers(-3, 4, m),
        "adherence": adherence,
        "viral_load": vl,
        "cd4": np.where(first & (rng.random(m) < 0.9), people["base_cd4"][idx], np.nan),
        "who_stage": np.where(
            first | (rng.random(m) < 0.12),
            np.maximum(1, people["base_stage"][idx] - (on_art_days > 365) - (on_art_days > 730)),
            0,
        ),
        "weight": np.where(rng.random(m) < 0.85, state["weight"][idx].round(1), np.nan),
    }


def _viral_load(rng, state: dict, idx, day, adherence, frailty) -> np.ndarray:
    """A result where one is due (first at ~6 months, then every 6-12); 15% of due tests are missed and retried."""
    m = len(idx)
    vl = np.full(m, np.nan)
    due = day >= state["next_vl_day"][idx]
    drawn = due & (rng.random(m) < 0.85)
    p_suppressed = _sigmoid(2.1 - 1.4 * (adherence == 2) - 0.6 * (adherence == 1) - 0.6 * frailty)
    suppressed = rng.random(m) < p_suppressed
    low = np.where(rng.random(m) < 0.5, 0.0, np.clip(rng.lognormal(np.log(90), 0.9, m), 20, 999).round())
    high = np.clip(rng.lognormal(np.log(18000), 1.3, m), 1000, 5e6).round()
    vl[drawn] = np.where(suppressed, low, high)[drawn]
    state["last_vl"][idx[drawn]] = vl[drawn]
    state["last_vl_day"][idx[drawn]] = day[drawn]
    next_test = day + rng.integers(180, 366, m)
    retry = np.where(due, day + rng.integers(60, 150, m), state["next_vl_day"][idx])
    state["next_vl_day"][idx] = np.where(drawn, next_test, retry)
    return vl


def _supply(rng, state: dict, idx, adherence, on_art_days) -> np.ndarray:
    """Days of drugs: monthly while new on ART, multi-month for the stable (suppressed, adherent, on time)."""
    last_vl = state["last_vl"][idx]
    stable = (last_vl < 1000) & (adherence == 0) & (state["prev_cat"][idx] == 0) & (on_art_days >= 180)
    probabilities = np.where(
        (on_art_days < 180)[:, None],
        [0.85, 0.15, 0.0, 0.0],
        np.where(stable[:, None], [0.2, 0.2, 0.45, 0.15], [0.6, 0.3, 0.1, 0.0]),
    )
    return SUPPLY_DAYS[_choose(rng, probabilities)]


def _risk(people: dict, state: dict, idx: np.ndarray, visit: dict) -> np.ndarray:
    """Log-odds (before thresholds) that the coming appointment is missed; see the module docstring."""
    day = visit["day"]
    on_art_days = day - people["art_start"][idx]
    age = (day - people["birth"][idx]) / 365.25
    last_vl = state["last_vl"][idx]
    vl_missing = np.isnan(last_vl) | (day - state["last_vl_day"][idx] > 450)
    late_share = state["late_count"][idx] / np.maximum(state["appointments"][idx], 1)
    return (
        PAST_LATENESS_EFFECT[state["prev_cat"][idx]]
        + 1.1 * late_share
        + 0.25 * (on_art_days < 183)
        + 0.45 * ((age >= 15) & (age < 25))
        + 0.3 * ~people["female"][idx]
        + 0.6 * (last_vl >= 1000)
        + 0.35 * vl_missing
        + 0.7 * (visit["adherence"] == 2)
        + 0.3 * (visit["adherence"] == 1)
        + 0.35 * (visit["supply"] == 30)
        + people["facility_effect"][idx]
        + 0.5 * people["frailty"][idx]
    )


def _next_appointment(rng: np.random.Generator, people: dict, state: dict, idx, visit: dict, *, end: int):
    m = len(idx)
    # Lateness counts from the later of the booked date and the day the drugs run out, as the label does.
    day, due = visit["day"], np.maximum(visit["appointment"], visit["day"] + visit["supply"])
    u = rng.random(m)
    category = (u[:, None] < _sigmoid(_risk(people, state, idx, visit)[:, None] + THRESHOLDS)).sum(axis=1)
    next_day = due + _days_late(rng, category)

    event, event_day = _death_or_transfer(rng, people, state, idx, visit)
    event_happens = (event > 0) & (event_day < np.minimum(next_day, due + INTERRUPTION_DAYS + 1))
    event_happens &= event_day <= end
    event = np.where(event_happens, event, 0)
    next_day = np.where(event_happens, NEVER, next_day)

    visited = next_day <= end
    lapsed = ~visited & ~event_happens & (due + INTERRUPTION_DAYS < end)
    observed = np.where(visited, category, np.where(lapsed, 3, -1))
    known = observed >= 0
    appt = {
        "patient": idx,
        "visit_date": day,
        "appointment_date": visit["appointment"],
        "due_date": due,
        "next_visit_date": np.where(visited, next_day, -1),
        "category": observed,
    }
    state["appointments"][idx] += known
    state["late_count"][idx] += known & (observed >= 1)
    state["prev_cat"][idx] = np.where(known, observed, state["prev_cat"][idx])

    stop = np.minimum(next_day, np.where(event_happens, event_day, NEVER))
    # An unscheduled visit falls before the due date and books and dispenses nothing, so by the label's return rule
    # (predictions.timeline.return_day) it never counts as the return; here only patients who come back make them.
    unscheduled = _unscheduled(rng, idx, visit, limit=np.minimum(stop, end + 1), in_care=category < 3)
    return appt, {"event": event, "event_day": event_day, "next_day": next_day, "unscheduled": unscheduled}


def _days_late(rng, category: np.ndarray) -> np.ndarray:
    """Days after the due date for each lateness category; an interrupter returns (after a long gap) or never."""
    m = len(category)
    days_late = np.select(
        [category == 0, category == 1, category == 2],
        [-rng.choice([0, 0, 0, 1, 2, 3], m), rng.integers(1, 15, m), rng.integers(15, 29, m)],
        default=INTERRUPTION_DAYS + 1 + rng.exponential(110, m).astype(np.int64),
    )
    returns = (category < 3) | (rng.random(m) < RETURN_PROBABILITY)
    return np.where(returns, days_late, NEVER)


def _death_or_transfer(rng, people: dict, state: dict, idx, visit: dict):
    m = len(idx)
    months = (visit["appointment"] - visit["day"] + INTERRUPTION_DAYS) / 30.4
    unsuppressed = state["last_vl"][idx] >= 1000
    death_hazard = 0.0006 + 0.0025 * unsuppressed + 0.002 * (people["base_stage"][idx] >= 3)
    p_death = 1 - (1 - death_hazard) ** months
    p_transfer = 1 - (1 - 0.0015) ** months
    u = rng.random(m)
    event = np.where(u < p_death, 2, np.where(u < p_death + p_transfer, 1, 0))
    event_day = (
        visit["day"] + 1 + (rng.random(m) * (visit["appointment"] - visit["day"] + INTERRUPTION_DAYS)).astype(np.int64)
    )
    return event, event_day


def _unscheduled(rng, idx, visit: dict, *, limit: np.ndarray, in_care: np.ndarray) -> list[dict]:
    m = len(idx)
    day = visit["day"] + 7 + (rng.random(m) * np.maximum(visit["supply"] - 12, 1)).astype(np.int64)
    has = (rng.random(m) < 0.07) & (day < limit) & in_care
    if not has.any():
        return []
    k = int(has.sum())
    return [
        {
            "patient": idx[has],
            "day": day[has],
            "kind": "unscheduled",
            "supply": 0,
            "appointment": -1,
            "adherence": -1,
            "viral_load": np.nan,
            "cd4": np.nan,
            "who_stage": 0,
            "weight": np.where(rng.random(k) < 0.9, visit["weight"][has], np.nan),
        }
    ]


def _appointment_frame(appointments: list[dict]) -> pd.DataFrame:
    frame = pd.concat([pd.DataFrame(a) for a in appointments], ignore_index=True)
    known = frame["category"] >= 0
    outcome = np.where(known, np.array(LATE_CATEGORIES, dtype=object)[frame["category"].clip(0)], "censored")
    next_visit = frame["next_visit_date"].to_numpy()
    return pd.DataFrame(
        {
            "patient": frame["patient"].to_numpy(),
            "visit_date": _dates(frame["visit_date"]),
            "appointment_date": _dates(frame["appointment_date"]),
            "due_date": _dates(frame["due_date"]),
            "next_visit_date": np.where(next_visit >= 0, _dates(next_visit), np.datetime64("NaT")),
            "days_late": np.where(next_visit >= 0, next_visit - frame["due_date"].to_numpy(), np.nan),
            "outcome": outcome,
        }
    ).sort_values(["patient", "appointment_date"], ignore_index=True)


# --- the tables -------------------------------------------------------------


def _facility_frame(facilities: int, prefix: str) -> pd.DataFrame:
    numbers = np.arange(1, facilities + 1)
    regions = [REGIONS[i % len(REGIONS)] for i in range(facilities)]
    return pd.DataFrame(
        {
            "code": [f"{prefix}{i:03d}" for i in numbers],
            "name": [f"Synthetic Health Centre {i}" for i in numbers],
            "region": [r for r, _ in regions],
            "district": [d for _, d in regions],
        }
    )


def _patient_frame(people: dict, facilities: pd.DataFrame, status: np.ndarray, status_day: np.ndarray):
    codes = facilities["code"].to_numpy()[people["facility"]]
    sequence = pd.Series(people["facility"]).groupby(people["facility"]).cumcount().to_numpy() + 1
    return pd.DataFrame(
        {
            "facility": codes,
            "identifier": [f"{code}-{seq:06d}" for code, seq in zip(codes, sequence, strict=True)],
            "sex": np.where(people["female"], "F", "M"),
            "birth_date": _dates(people["birth"]),
            "art_start_date": _dates(people["art_start"]),
            "enrollment_date": _dates(people["enrollment"]),
            "status": np.array(["active", "transferred_out", "died"])[status],
            "status_date": np.where(status > 0, _dates(np.maximum(status_day, 0)), np.datetime64("NaT")),
        }
    )


def _observation_frame(rng: np.random.Generator, visits: pd.DataFrame, people: dict) -> pd.DataFrame:
    """Melt one row per visit into one row per recorded concept."""
    visits = visits.sort_values(["patient", "day"], kind="stable", ignore_index=True)
    minutes = rng.integers(8 * 60, 16 * 60, len(visits))
    visits["observed_at"] = _dates(visits["day"]).astype("datetime64[s]") + minutes.astype("timedelta64[m]")
    scheduled = visits[visits["kind"] == "scheduled"]
    patient = visits["patient"].to_numpy()
    age = (visits["day"].to_numpy() - people["birth"][patient]) / 365.25
    fertile = people["female"][patient] & (age < 50)
    parts = [
        _part(visits, "visit", text=visits["kind"]),
        _part(scheduled, "next_appointment", date=_dates(scheduled["appointment"])),
        _part(scheduled, "arv_days_supplied", numeric=scheduled["supply"]),
        _part(scheduled, "arv_regimen", text=people["regimen"][scheduled["patient"].to_numpy()]),
        _part(scheduled, "adherence", text=np.array(["good", "fair", "poor"])[scheduled["adherence"].clip(0)]),
        _part(visits, "weight", numeric=visits["weight"], keep=visits["weight"].notna()),
        _part(scheduled, "viral_load", numeric=scheduled["viral_load"], keep=scheduled["viral_load"].notna()),
        _part(scheduled, "cd4", numeric=scheduled["cd4"], keep=scheduled["cd4"].notna()),
        _part(scheduled, "who_stage", numeric=scheduled["who_stage"], keep=scheduled["who_stage"] > 0),
    ]
    tb = rng.random(len(visits))
    parts.append(_part(visits, "tb_screen", text=np.where(tb < 0.02, "positive", "negative"), keep=tb < 0.8))
    pregnant, feeding = rng.random(len(visits)), rng.random(len(visits))
    parts.append(_part(visits, "pregnant", numeric=(pregnant < 0.03).astype(float), keep=fertile & (pregnant < 0.5)))
    parts.append(_part(visits, "breastfeeding", numeric=(feeding < 0.05).astype(float), keep=fertile & (feeding < 0.4)))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["patient", "observed_at"], kind="stable", ignore_index=True)


def _part(visits: pd.DataFrame, concept: str, *, numeric=None, text=None, date=None, keep=None) -> pd.DataFrame:
    n = len(visits)
    part = pd.DataFrame(
        {
            "patient": visits["patient"].to_numpy(),
            "concept": concept,
            "observed_at": visits["observed_at"].to_numpy(),
            "value_numeric": np.full(n, np.nan) if numeric is None else np.asarray(numeric, dtype=float),
            "value_text": np.full(n, None, dtype=object) if text is None else np.asarray(text, dtype=object),
            "value_date": np.full(n, np.datetime64("NaT"), dtype="datetime64[D]") if date is None else date,
        }
    )
    return part if keep is None else part[np.asarray(keep)]


# --- rates (for tests and for tuning) -----------------------------------------


def interruption_rates(cohort: Cohort, *, as_of: dt.date, window_years: float = 2.0) -> dict[str, float]:
    """How often appointments end in IIT, and how many patients have one "within two years".

    The issue's "30-50% of patients with at least one within two years" is read two ways, and both are
    reported: in the last ``window_years`` before ``as_of`` (patients with an appointment then), and in
    the first ``window_years`` on ART (patients followed that long).
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
        "return_share": float(_return_share(appointments)),
    }


def _any_iit(appointments: pd.DataFrame) -> pd.Series:
    return (appointments["outcome"] == "interrupted").groupby(appointments["patient"]).any()


def _return_share(appointments: pd.DataFrame) -> float:
    iit = appointments[appointments["outcome"] == "interrupted"]
    return float(iit["next_visit_date"].notna().mean()) if len(iit) else 0.0
