"""The synthetic cohort: reproducible, as messy as docs/COHORT.md says, written through bulk paths."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from patients.cohort import generate_cohort
from patients.cohort_rates import interruption_rates, record_rates
from patients.concepts import CONCEPTS
from patients.models import Facility, Observation, Patient

AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(facilities=6, patients=2000, seed=7, as_of=AS_OF)


def test_the_same_seed_gives_the_same_data(cohort):
    again = generate_cohort(facilities=6, patients=2000, seed=7, as_of=AS_OF)
    pd.testing.assert_frame_equal(cohort.patients, again.patients)
    pd.testing.assert_frame_equal(cohort.observations, again.observations)
    pd.testing.assert_frame_equal(cohort.appointments, again.appointments)


def test_another_seed_gives_other_data(cohort):
    other = generate_cohort(facilities=6, patients=2000, seed=8, as_of=AS_OF)
    assert not cohort.patients["birth_date"].equals(other.patients["birth_date"])


@pytest.mark.parametrize("seed", [7, 21, 1234])
def test_interruption_rates_are_in_the_documented_ranges(seed):
    rates = interruption_rates(generate_cohort(facilities=6, patients=2000, seed=seed, as_of=AS_OF), as_of=AS_OF)
    assert 0.05 <= rates["appointment_iit_rate"] <= 0.09
    assert 0.30 <= rates["patient_iit_share"] <= 0.45
    assert 0.40 <= rates["patient_iit_share_first_years"] <= 0.55


def test_many_interrupters_return_and_some_are_lost_for_good(cohort):
    # About three in four return; migrants mostly never do, and returns due after as_of are still out.
    assert 0.6 <= interruption_rates(cohort, as_of=AS_OF)["return_share"] <= 0.85


def test_the_record_is_as_incomplete_late_and_eventful_as_documented(cohort):
    rates = record_rates(cohort, as_of=AS_OF)
    assert 0.5 <= rates["adherence_assessed_share"] <= 0.72
    assert 0.05 <= rates["who_stage_recorded_share"] <= 0.15
    assert 0.7 <= rates["patients_with_who_stage_share"] <= 0.9
    assert 0.65 <= rates["vl_coverage"] <= 0.9
    assert 0.03 <= rates["unscheduled_visit_share"] <= 0.08
    assert 0.02 <= rates["iit_after_drop_in_share"] <= 0.15
    assert 0.15 <= rates["multi_month_dispense_share"] <= 0.30
    assert 10 <= rates["median_lab_entry_days"] <= 25
    assert 0.10 <= rates["form_entered_late_share"] <= 0.20
    assert rates["visit_entered_late_share"] == 0
    assert 0.02 <= rates["died_share"] <= 0.06
    assert 0.015 <= rates["transferred_out_share"] <= 0.05


def test_hidden_episodes_drive_interruptions_and_last_several_appointments(cohort):
    appointments = cohort.appointments[cohort.appointments["outcome"] != "censored"]
    iit = appointments["outcome"] == "interrupted"
    in_episode = appointments["episode"] > 0
    assert iit[in_episode].mean() > 2 * iit[~in_episode].mean()
    runs = (in_episode != in_episode.groupby(appointments["patient"]).shift()).cumsum()
    assert in_episode.groupby(runs).size()[in_episode.groupby(runs).first()].mean() >= 2


def test_the_record_shows_the_hidden_causes_only_partly(cohort):
    """Reported adherence is poorer in episodes, yet most appointments that end in IIT follow a 'good' report."""
    obs = cohort.observations
    said = obs[obs["concept"] == "adherence"][["patient", "observed_at", "value_text"]]
    appointments = cohort.appointments[cohort.appointments["outcome"] != "censored"]
    visits = appointments.assign(observed_at=appointments["visit_date"]).sort_values("observed_at")
    said = said.assign(observed_at=said["observed_at"].dt.normalize()).sort_values("observed_at")
    both = pd.merge_asof(visits, said, on="observed_at", by="patient", direction="backward")
    poor = both["value_text"] == "poor"
    iit = both["outcome"] == "interrupted"
    assert poor[both["episode"] > 0].mean() > 2 * poor[both["episode"] == 0].mean()
    assert (both.loc[iit, "value_text"] == "good").mean() > 0.5


def test_results_are_entered_after_the_day_they_describe_and_never_after_as_of(cohort):
    obs = cohort.observations
    assert (obs["entered_at"] >= obs["observed_at"]).all()
    assert obs["entered_at"].max() < pd.Timestamp(AS_OF)
    lag = (obs["entered_at"] - obs["observed_at"]).dt.days
    labs = obs["concept"].isin(["viral_load", "cd4"])
    assert (lag[labs] >= 2).all() and lag[labs].max() >= 35  # results come back 3 days after the sample at the soonest
    booking = obs["concept"].isin(["visit", "next_appointment", "arv_days_supplied"])
    assert (obs.loc[booking, "entered_at"].dt.normalize() == obs.loc[booking, "observed_at"].dt.normalize()).all()


def test_most_appointments_are_kept_on_time_and_lateness_is_a_mixture(cohort):
    shares = cohort.appointments["outcome"].value_counts(normalize=True)
    assert shares["on_time"] > 0.5
    assert 0.05 < shares["late_1_14"] < 0.3
    assert 0.02 < shares["late_15_28"] < 0.12


def test_past_lateness_raises_the_risk_of_interruption(cohort):
    appointments = cohort.appointments[cohort.appointments["outcome"] != "censored"]
    iit = appointments["outcome"] == "interrupted"
    previous = appointments.groupby("patient")["outcome"].shift(1)
    after_iit = iit[previous == "interrupted"].mean()
    after_on_time = iit[previous == "on_time"].mean()
    assert after_iit > 2 * after_on_time


def test_young_and_male_patients_interrupt_more(cohort):
    decided = cohort.appointments[cohort.appointments["outcome"] != "censored"]
    patients = cohort.patients.iloc[decided["patient"]].reset_index(drop=True)
    iit = (decided["outcome"] == "interrupted").reset_index(drop=True)
    age = (decided["visit_date"].reset_index(drop=True) - patients["birth_date"]).dt.days / 365.25
    assert iit[age < 25].mean() > iit[age >= 25].mean()
    assert iit[patients["sex"] == "M"].mean() > iit[patients["sex"] == "F"].mean()


def test_the_history_spans_years_and_visits_carry_supply_and_appointment(cohort):
    obs = cohort.observations
    span = obs["observed_at"].max() - obs["observed_at"].min()
    assert span > pd.Timedelta(days=4 * 365)
    assert obs["observed_at"].max() < pd.Timestamp(AS_OF)
    supplies = set(obs.loc[obs["concept"] == "arv_days_supplied", "value_numeric"].astype(int))
    assert supplies == {30, 60, 90, 180}
    assert set(obs["concept"]) == set(CONCEPTS)
    visits = obs[obs["concept"] == "visit"]["value_text"].value_counts(normalize=True)
    assert 0.01 < visits["unscheduled"] < 0.15


def test_every_generated_value_passes_its_concepts_validation(cohort):
    sample = cohort.observations.groupby("concept").head(200)
    for row in sample.itertuples():
        kind = CONCEPTS[row.concept].kind
        raw = {
            "date": lambda r: r.value_date.date().isoformat(),
            "coded": lambda r: r.value_text,
            "text": lambda r: r.value_text,
            "boolean": lambda r: bool(r.value_numeric),
            "numeric": lambda r: int(r.value_numeric) if CONCEPTS[r.concept].integer else r.value_numeric,
        }[kind](row)
        CONCEPTS[row.concept].clean(raw)


def test_dates_are_possible(cohort):
    patients = cohort.patients
    assert (patients["art_start_date"] >= patients["birth_date"]).all()
    assert (patients["enrollment_date"] <= patients["art_start_date"]).all()
    ages = (patients["art_start_date"] - patients["birth_date"]).dt.days / 365.25
    assert ages.min() >= 15 and 0.1 < (ages < 25).mean() < 0.3
    first_seen = cohort.observations.groupby("patient")["observed_at"].min()
    assert (first_seen.to_numpy() >= patients["art_start_date"].to_numpy()[first_seen.index]).all()


def test_deaths_and_transfers_stop_the_record(cohort):
    patients = cohort.patients
    gone = patients[patients["status"] != "active"]
    assert 0.02 < len(gone) / len(patients) < 0.15
    assert set(gone["status"]) == {"died", "transferred_out"}
    last_seen = cohort.observations.groupby("patient")["observed_at"].max()
    assert (last_seen[gone.index].to_numpy() < gone["status_date"].to_numpy()).all()


def test_women_have_pregnancy_and_breastfeeding_records_and_men_do_not(cohort):
    obs = cohort.observations
    sexes = cohort.patients["sex"].to_numpy()[obs["patient"]]
    maternal = obs["concept"].isin(["pregnant", "breastfeeding"])
    assert maternal.any()
    assert (sexes[maternal.to_numpy()] == "F").all()


def test_generate_cohort_writes_the_tables(db):
    call_command("generate_cohort", "--facilities", "2", "--patients", "60", "--seed", "3", "--as-of", "2026-01-31")
    expected = generate_cohort(facilities=2, patients=60, seed=3, as_of=dt.date(2026, 1, 31))
    assert Facility.objects.filter(code__startswith="SYN-").count() == 2
    assert Patient.objects.count() == 60
    assert Observation.objects.count() == len(expected.observations)
    first = expected.patients.iloc[0]
    stored = Patient.objects.get(identifier=first["identifier"])
    assert stored.birth_date == first["birth_date"].date()
    obs = expected.observations
    weights = obs[(obs["patient"] == 0) & (obs["concept"] == "weight")]
    stored_weights = Observation.objects.filter(patient=stored, concept="weight").order_by("observed_at")
    assert [o.value for o in stored_weights] == list(weights["value_numeric"])
    assert all(o.facility_id == stored.facility_id for o in stored_weights)
    # Written timestamps compare like ORM-written ones (SQLite stores them as text).
    moment = stored_weights[0].observed_at
    assert stored_weights.filter(observed_at__gte=moment, observed_at__lte=moment).count() == 1


def test_generate_cohort_refuses_to_write_over_existing_patients(db):
    args = ["generate_cohort", "--facilities", "1", "--patients", "5", "--seed", "1", "--as-of", "2026-01-31"]
    call_command(*args)
    with pytest.raises(CommandError, match="already have patients"):
        call_command(*args)
    call_command(*args, "--prefix", "OTHER-")
    assert Patient.objects.count() == 10


def test_generate_cohort_refuses_a_bad_date(db):
    with pytest.raises(CommandError):
        call_command("generate_cohort", "--facilities", "1", "--patients", "5", "--seed", "1", "--as-of", "31/01/2026")
