"""A synthetic ART cohort as messy as a real EMR: pure, reproducible, vectorised.

``generate_cohort`` returns DataFrames and touches no database; the writer in
``patients.cohort_writer`` puts them in the tables.  The simulation walks all
patients forward one scheduled visit at a time (numpy arrays over patients, one
loop iteration per visit number).  The rates it produces are in docs/COHORT.md
(``record_rates`` and ``interruption_rates`` measure them).

What drives lateness is hidden, as it is in a clinic: the record shows only
noisy traces of it.

* Each person has a lasting **engagement** trait, and lives through **episodes**
  (life disruption, migration, depression or drinking) that begin and end at
  random and last several appointments.  An appointment's lateness (an ordinal
  logit: on time, 1-14, 15-28, over 28 days late, counted from the due date as
  ``predictions.timeline.return_day`` counts it) rises with low engagement, the
  current episode, the facility, youth, male sex and the first months on ART.
  Nothing the model reads (past lateness, adherence, viral load) is in that
  formula: those are consequences of the same hidden causes.
* Adherence is taken and assessed at about 60% of visits (each facility its
  own habit); the recorded answer is a noisy, flattering report of the hidden
  adherence.  Viral load is drawn first at about 6 months and then yearly
  (3-monthly after a high result); some samples are not taken or their
  results never come back; results are entered days to weeks after the sample
  date.  WHO stage is recorded mostly at enrolment.
* Unscheduled visits come more often in episodes and with an unsuppressed
  viral load, so patients about to interrupt make them too.  They fall before
  the appointment's due date and book and dispense nothing, so (by the label's
  return rule) they never count as the return.
* Interrupters return after a long gap or never (migrants mostly never);
  patients die or transfer out with a dated status; stable patients get
  multi-month dispensing.
* Visit data (visit, booking, dispense) is entered on the day; a visit's
  clinical form (adherence, WHO stage, weight, screening) is sometimes entered
  days later; lab results are entered when they come back (``entered_at``).
  Anything not entered by ``as_of`` is not in the record yet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

EPOCH = dt.date(1970, 1, 1)
NEVER = np.iinfo(np.int64).max // 4  # a day number no one reaches
MONTH = 30.4375

LATE_CATEGORIES = ("on_time", "late_1_14", "late_15_28", "interrupted")
INTERRUPTION_DAYS = 28
SUPPLY_DAYS = np.array([30, 60, 90, 180])
REGIMENS = np.array(["TDF/3TC/DTG", "TDF/3TC/EFV", "ABC/3TC/DTG", "AZT/3TC/NVP"])
REGIMEN_WEIGHTS = np.array([0.78, 0.12, 0.06, 0.04])
REGIONS = (("Central", "Kiambu"), ("Coast", "Mombasa"), ("Nyanza", "Kisumu"), ("Rift Valley", "Nakuru"))

# Episodes: none, life disruption, migration, depression or drinking.
NO_EPISODE, DISRUPTION, MIGRATION, DEPRESSION = range(4)
EPISODE_ONSET_PER_MONTH = 0.012
EPISODE_END_PER_MONTH = np.array([0.0, 0.08, 0.06, 0.05])
EPISODE_LATENESS = np.array([0.0, 1.6, 2.8, 1.4])  # added to the lateness log-odds
EPISODE_ADHERENCE = np.array([0.0, -0.6, -0.4, -1.3])  # added to the hidden adherence
EPISODE_DROP_IN_PER_MONTH = np.array([0.025, 0.12, 0.06, 0.10])
RETURN_PROBABILITY = np.array([0.85, 0.8, 0.3, 0.7])  # of an interrupter, by episode
ENGAGEMENT_LATENESS = -1.6
# Ordinal-logit thresholds: P(category >= k) = sigmoid(risk + THRESHOLDS[k-1]).
THRESHOLDS = np.array([-1.5, -3.0, -3.6])
ADHERENCE_ASSESSED = 0.6  # the cohort-wide share of visits whose adherence is assessed
WHO_STAGE_AT_ENROLMENT, WHO_STAGE_LATER = 0.7, 0.05
VL_NOT_TAKEN, VL_NO_RESULT = 0.15, 0.07
FORM_ENTERED_LATE = 0.15


@dataclass(frozen=True)
class Cohort:
    """The generated tables.  ``patients.patient`` and ``observations.patient`` are row positions."""

    facilities: pd.DataFrame  # code, name, region, district
    patients: pd.DataFrame  # facility (code), identifier, sex, birth_date, art_start_date, enrollment_date,
    #                         status, status_date
    observations: pd.DataFrame  # patient, concept, observed_at, entered_at, value_numeric, value_text, value_date
    # patient, visit_date, appointment_date (booked), due_date (later of booked and drugs running out),
    # next_visit_date, days_late (from due_date), outcome, episode (hidden cause during the interval)
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


def _within(rng: np.random.Generator, months: np.ndarray, per_month) -> np.ndarray:
    """Whether an event with a monthly hazard happens within ``months``."""
    return rng.random(len(months)) < 1 - (1 - per_month) ** months


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
    # History ends the day before as_of, and what was not entered by then is not in the record yet: nothing is
    # recorded later than "now" when as_of is today.
    with tqdm(total=patients, desc="simulating", unit="patient", disable=not progress) as bar:
        visits, appointments, status, status_day = _simulate(rng, people, end=day_number(as_of) - 1, bar=bar)
    facility_frame = _facility_frame(facilities, facility_prefix)
    patient_frame = _patient_frame(people, facility_frame, status, status_day)
    observation_frame = _observation_frame(rng, visits, people, entered_before=day_number(as_of))
    return Cohort(facility_frame, patient_frame, observation_frame, appointments)


# --- the people -------------------------------------------------------------


def _draw_people(rng: np.random.Generator, *, facilities: int, patients: int, end: int, years: float) -> dict:
    sizes = rng.dirichlet(np.full(facilities, 4.0))
    facility = np.sort(rng.choice(facilities, size=patients, p=sizes))
    young = rng.random(patients) < 0.2
    age_at_start = np.where(young, rng.uniform(15, 25, patients), np.minimum(25 + rng.gamma(2.5, 6.0, patients), 75))
    art_start = end - rng.integers(30, int(years * 365.25), patients)
    female = rng.random(patients) < 0.62
    # Each facility's habit of assessing adherence, around the cohort-wide share.
    habit = np.log(ADHERENCE_ASSESSED / (1 - ADHERENCE_ASSESSED)) + _centred(rng.normal(0.0, 0.6, facilities))
    return {
        "n": patients,
        "facility": facility,
        "facility_effect": _centred(rng.normal(0.0, 0.35, facilities))[facility],
        "assessing": _sigmoid(habit)[facility],
        "engagement": rng.normal(0.0, 1.0, patients),
        "mobile": rng.random(patients) < 0.15,
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

    1. At each patient's scheduled visit: assess adherence (or not), draw a viral load if one is due,
       dispense drugs and book the next appointment.
    2. The hidden episode for the coming interval begins, goes on or ends.
    3. Lateness for the appointment from the hidden causes; the next visit is the due date plus that
       lateness (an interrupter returns after a long gap, or never).
    4. Maybe unscheduled visits before the due date, maybe death or transfer out.
    5. Patients whose next visit falls after ``end`` leave the loop.
    """
    n = people["n"]
    state = {
        "day": people["art_start"].copy(),
        "prev_cat": np.zeros(n, np.int64),
        "episode": np.zeros(n, np.int64),
        "adherence": people["engagement"] * 0.8,  # hidden, a running average of adherence
        "suppressed": np.zeros(n, bool),  # hidden: the true viral state
        "last_vl": np.full(n, np.nan),  # the last result the clinic has
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
    """A scheduled visit for patients ``idx`` on ``state['day'][idx]``: adherence, labs, dispense, booking."""
    day = state["day"][idx]
    m = len(idx)
    on_art_days = day - people["art_start"][idx]
    first = on_art_days == 0
    vl, vl_lag = _viral_load(rng, state, idx, day, on_art_days)
    reported = _reported_adherence(rng, state["adherence"][idx])
    adherence = np.where(rng.random(m) < people["assessing"][idx], reported, -1)
    supply = _supply(rng, state, idx, adherence, on_art_days)
    state["weight"][idx] = np.clip(state["weight"][idx] + rng.normal(0.05, 0.8, m) + 0.4 * (on_art_days < 365), 30, 200)
    stage_recorded = rng.random(m) < np.where(first, WHO_STAGE_AT_ENROLMENT, WHO_STAGE_LATER)
    return {
        "patient": idx,
        "day": day,
        "kind": "scheduled",
        "supply": supply,
        "appointment": day + supply + rng.integers(-3, 4, m),
        "adherence": adherence,
        "viral_load": vl,
        "lab_lag": vl_lag,
        "cd4": np.where(first & (rng.random(m) < 0.6), people["base_cd4"][idx], np.nan),
        "who_stage": np.where(
            stage_recorded, np.maximum(1, people["base_stage"][idx] - (on_art_days > 365) - (on_art_days > 730)), 0
        ),
        "weight": np.where(rng.random(m) < 0.85, state["weight"][idx].round(1), np.nan),
        "form_lag": np.where(rng.random(m) < FORM_ENTERED_LATE, rng.integers(1, 22, m), 0),
    }


def _reported_adherence(rng: np.random.Generator, hidden: np.ndarray) -> np.ndarray:
    """What a patient says when asked (0 good, 1 fair, 2 poor): flattering and noisy."""
    said = hidden + rng.normal(0.0, 0.8, len(hidden))
    return np.digitize(-said, [1.1, 1.8])


def _viral_load(rng, state: dict, idx, day, on_art_days) -> tuple[np.ndarray, np.ndarray]:
    """A result where one is due (NaN where none), and the days until the visit's lab results are entered.

    First at ~6 months, then yearly, 3-monthly after a high one. Some due samples are not taken (retried at a
    later visit), some taken samples never give a result; results come back days to weeks later.
    """
    m = len(idx)
    # The hidden viral state follows adherence: it settles over the first months on ART, then can rebound.
    p_suppressed = _sigmoid(1.9 + 1.6 * state["adherence"][idx]) * np.clip(on_art_days / 150, 0, 1)
    state["suppressed"][idx] = rng.random(m) < p_suppressed
    due = day >= state["next_vl_day"][idx]
    taken = due & (rng.random(m) >= VL_NOT_TAKEN)
    resulted = taken & (rng.random(m) >= VL_NO_RESULT)
    low = np.where(rng.random(m) < 0.5, 0.0, np.clip(rng.lognormal(np.log(90), 0.9, m), 20, 999).round())
    high = np.clip(rng.lognormal(np.log(18000), 1.3, m), 1000, 5e6).round()
    vl = np.where(resulted, np.where(state["suppressed"][idx], low, high), np.nan)
    lag = np.where(rng.random(m) < 0.1, rng.integers(35, 90, m), np.clip(rng.lognormal(np.log(14), 0.5, m), 3, 60))
    state["last_vl"][idx[resulted]] = vl[resulted]
    state["last_vl_day"][idx[resulted]] = day[resulted]
    interval = np.where(vl >= 1000, rng.integers(85, 100, m), rng.integers(335, 395, m))
    state["next_vl_day"][idx] = np.where(taken, day + interval, state["next_vl_day"][idx])
    return vl, lag.round()


def _supply(rng, state: dict, idx, adherence, on_art_days) -> np.ndarray:
    """Days of drugs: monthly while new on ART, multi-month for the stable (suppressed, adherent, on time)."""
    last_vl = state["last_vl"][idx]
    recent = state["day"][idx] - state["last_vl_day"][idx] < 400
    stable = (last_vl < 1000) & recent & (adherence != 2) & (state["prev_cat"][idx] <= 1) & (on_art_days >= 365)
    probabilities = np.where(
        (on_art_days < 180)[:, None],
        [0.9, 0.1, 0.0, 0.0],
        np.where(stable[:, None], [0.15, 0.15, 0.55, 0.15], [0.7, 0.25, 0.05, 0.0]),
    )
    return SUPPLY_DAYS[_choose(rng, probabilities)]


def _episodes(rng, people: dict, state: dict, idx, months: np.ndarray) -> np.ndarray:
    """The hidden episode during the coming interval: an episode goes on or ends; a new one may begin."""
    episode = state["episode"][idx]
    ends = _within(rng, months, EPISODE_END_PER_MONTH[episode])
    episode = np.where(ends, NO_EPISODE, episode)
    engagement = people["engagement"][idx]
    onset = EPISODE_ONSET_PER_MONTH * np.exp(-0.45 * engagement) * (1 + people["mobile"][idx])
    begins = (episode == NO_EPISODE) & _within(rng, months, onset)
    p_migration = np.where(people["mobile"][idx], 0.5, 0.12)
    kind = np.where(
        rng.random(len(idx)) < p_migration, MIGRATION, np.where(rng.random(len(idx)) < 0.55, DISRUPTION, DEPRESSION)
    )
    episode = np.where(begins, kind, episode)
    state["episode"][idx] = episode
    # Adherence drifts toward what engagement and the episode allow.
    target = 0.8 * engagement + EPISODE_ADHERENCE[episode] + rng.normal(0, 0.5, len(idx))
    state["adherence"][idx] = 0.5 * state["adherence"][idx] + 0.5 * target
    return episode


def _risk(people: dict, idx: np.ndarray, day: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Log-odds (before thresholds) that the coming appointment is missed; see the module docstring."""
    on_art_days = day - people["art_start"][idx]
    age = (day - people["birth"][idx]) / 365.25
    return (
        ENGAGEMENT_LATENESS * people["engagement"][idx]
        + EPISODE_LATENESS[episode]
        + 0.25 * (on_art_days < 183)
        + 0.45 * ((age >= 15) & (age < 25))
        + 0.3 * ~people["female"][idx]
        + people["facility_effect"][idx]
    )


def _next_appointment(rng: np.random.Generator, people: dict, state: dict, idx, visit: dict, *, end: int):
    m = len(idx)
    # Lateness counts from the later of the booked date and the day the drugs run out, as the label does.
    day, due = visit["day"], np.maximum(visit["appointment"], visit["day"] + visit["supply"])
    episode = _episodes(rng, people, state, idx, (due - day) / MONTH)
    u = rng.random(m)
    category = (u[:, None] < _sigmoid(_risk(people, idx, day, episode)[:, None] + THRESHOLDS)).sum(axis=1)
    next_day = due + _days_late(rng, category, episode)
    # Coming back ends an episode half the time (the return visit is a chance to re-engage).
    state["episode"][idx] = np.where((category == 3) & (rng.random(m) < 0.5), NO_EPISODE, episode)

    event, event_day = _death_or_transfer(rng, people, state, idx, day, due, episode)
    event_happens = (event > 0) & (event_day < np.minimum(next_day, due + INTERRUPTION_DAYS + 1))
    event_happens &= event_day <= end
    event = np.where(event_happens, event, 0)
    next_day = np.where(event_happens, NEVER, next_day)

    visited = next_day <= end
    lapsed = ~visited & ~event_happens & (due + INTERRUPTION_DAYS < end)
    observed = np.where(visited, category, np.where(lapsed, 3, -1))
    appt = {
        "patient": idx,
        "visit_date": day,
        "appointment_date": visit["appointment"],
        "due_date": due,
        "next_visit_date": np.where(visited, next_day, -1),
        "category": observed,
        "episode": episode,
    }
    state["prev_cat"][idx] = np.where(observed >= 0, observed, state["prev_cat"][idx])

    # A drop-in falls before the due date (and before any return or death) and books and dispenses nothing, so
    # by the label's return rule (predictions.timeline.return_day) it never counts as the return.
    limit = np.minimum(np.minimum(due, next_day), np.where(event_happens, event_day, NEVER))
    unscheduled = _unscheduled(rng, state, idx, visit, episode, limit=np.minimum(limit, end + 1))
    return appt, {"event": event, "event_day": event_day, "next_day": next_day, "unscheduled": unscheduled}


def _days_late(rng, category: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Days after the due date for each lateness category; an interrupter returns (after a long gap) or never."""
    m = len(category)
    days_late = np.select(
        [category == 0, category == 1, category == 2],
        [-rng.choice([0, 0, 0, 1, 2, 3], m), rng.integers(1, 15, m), rng.integers(15, 29, m)],
        default=INTERRUPTION_DAYS + 1 + rng.exponential(120, m).astype(np.int64),
    )
    returns = (category < 3) | (rng.random(m) < RETURN_PROBABILITY[episode])
    return np.where(returns, days_late, NEVER)


def _death_or_transfer(rng, people: dict, state: dict, idx, day, due, episode):
    """A dated death or documented transfer out, from hidden health and moves, during the interval and grace."""
    m = len(idx)
    span = due - day + INTERRUPTION_DAYS
    months = span / MONTH
    advanced = (people["base_stage"][idx] >= 3) & (day - people["art_start"][idx] < 365)
    death_hazard = 0.0005 + 0.003 * ~state["suppressed"][idx] + 0.003 * advanced
    transfer_hazard = 0.0012 + 0.006 * (episode == MIGRATION)
    p_death = 1 - (1 - death_hazard) ** months
    p_transfer = 1 - (1 - transfer_hazard) ** months
    u = rng.random(m)
    event = np.where(u < p_death, 2, np.where(u < p_death + p_transfer, 1, 0))
    return event, day + 1 + (rng.random(m) * span).astype(np.int64)


def _unscheduled(rng, state: dict, idx, visit: dict, episode, *, limit: np.ndarray) -> list[dict]:
    """Drop-ins between a visit and ``limit``: more often in an episode or with an unsuppressed viral load."""
    start = visit["day"] + 3
    room = limit - start
    months = np.maximum(room, 0) / MONTH
    per_month = EPISODE_DROP_IN_PER_MONTH[episode] + 0.015 * ~state["suppressed"][idx]
    has = (room > 1) & _within(rng, months, per_month)
    if not has.any():
        return []
    k = int(has.sum())
    day = start[has] + (rng.random(k) * room[has]).astype(np.int64)
    return [
        {
            "patient": idx[has],
            "day": day,
            "kind": "unscheduled",
            "supply": 0,
            "appointment": -1,
            "adherence": -1,
            "viral_load": np.nan,
            "lab_lag": np.nan,
            "cd4": np.nan,
            "who_stage": 0,
            "weight": np.where(rng.random(k) < 0.9, visit["weight"][has], np.nan),
            "form_lag": 0,
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
            "episode": frame["episode"].to_numpy(),
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


def _observation_frame(rng: np.random.Generator, visits: pd.DataFrame, people: dict, *, entered_before: int):
    """Melt one row per visit into one row per recorded concept, each with its entry time.

    Rows not entered before the day ``entered_before`` begins are not in the record yet.
    """
    visits = visits.sort_values(["patient", "day"], kind="stable", ignore_index=True)
    minutes = rng.integers(8 * 60, 16 * 60, len(visits))
    visits["observed_at"] = _dates(visits["day"]).astype("datetime64[s]") + minutes.astype("timedelta64[m]")
    # Visit data is entered during the visit's day; the clinical form sometimes days later; labs when they return.
    soon = visits["observed_at"] + rng.integers(5, 120, len(visits)).astype("timedelta64[m]")
    visits["entered_at"] = soon
    visits["form_entered_at"] = soon + visits["form_lag"].to_numpy().astype("timedelta64[D]")
    lab_lag = np.nan_to_num(visits["lab_lag"].to_numpy(), nan=0).astype("timedelta64[D]")
    visits["lab_entered_at"] = _dates(visits["day"]).astype("datetime64[s]") + lab_lag + np.timedelta64(15, "h")
    scheduled = visits[visits["kind"] == "scheduled"]
    patient = visits["patient"].to_numpy()
    age = (visits["day"].to_numpy() - people["birth"][patient]) / 365.25
    fertile = people["female"][patient] & (age < 50)
    form, lab = {"entered": "form_entered_at"}, {"entered": "lab_entered_at"}
    adherence = np.array(["good", "fair", "poor"])[scheduled["adherence"].clip(0)]
    tb, pregnant, feeding = (rng.random(len(visits)) for _ in range(3))
    parts = [
        _part(visits, "visit", text=visits["kind"]),
        _part(scheduled, "next_appointment", date=_dates(scheduled["appointment"])),
        _part(scheduled, "arv_days_supplied", numeric=scheduled["supply"]),
        _part(scheduled, "arv_regimen", text=people["regimen"][scheduled["patient"].to_numpy()]),
        _part(scheduled, "adherence", text=adherence, keep=scheduled["adherence"] >= 0, **form),
        _part(visits, "weight", numeric=visits["weight"], keep=visits["weight"].notna(), **form),
        _part(scheduled, "viral_load", numeric=scheduled["viral_load"], keep=scheduled["viral_load"].notna(), **lab),
        _part(scheduled, "cd4", numeric=scheduled["cd4"], keep=scheduled["cd4"].notna(), **lab),
        _part(scheduled, "who_stage", numeric=scheduled["who_stage"], keep=scheduled["who_stage"] > 0, **form),
        _part(visits, "tb_screen", text=np.where(tb < 0.02, "positive", "negative"), keep=tb < 0.8, **form),
        _part(visits, "pregnant", numeric=pregnant < 0.03, keep=fertile & (pregnant < 0.5), **form),
        _part(visits, "breastfeeding", numeric=feeding < 0.05, keep=fertile & (feeding < 0.4), **form),
    ]
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["entered_at"] < np.datetime64(entered_before, "D").astype("datetime64[s]")]
    return frame.sort_values(["patient", "observed_at"], kind="stable", ignore_index=True)


def _part(
    visits: pd.DataFrame, concept: str, *, numeric=None, text=None, date=None, keep=None, entered: str = "entered_at"
) -> pd.DataFrame:
    n = len(visits)
    part = pd.DataFrame(
        {
            "patient": visits["patient"].to_numpy(),
            "concept": concept,
            "observed_at": visits["observed_at"].to_numpy(),
            "entered_at": visits[entered].to_numpy(),
            "value_numeric": np.full(n, np.nan) if numeric is None else np.asarray(numeric, dtype=float),
            "value_text": np.full(n, None, dtype=object) if text is None else np.asarray(text, dtype=object),
            "value_date": np.full(n, np.datetime64("NaT"), dtype="datetime64[D]") if date is None else date,
        }
    )
    return part if keep is None else part[np.asarray(keep)]
