"""Per-facility workload and yield: tier counts, sensitivity and PPV at each tier's cut-off, per resolved week."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.alerting.reports import health_report_build
from monitoring.evaluation.workload import facility_workload, resolved_weeks
from patients.models import Patient
from predictions.models import Prediction
from predictions.services import prediction_outcomes_resolve, predictions_backfill
from tests.monitoring import evaluation_data
from tests.predictions.conftest import _fresh_registry, stub_version  # noqa: F401 each test its own model directory
from tests.trained import write_cohort

pytestmark = pytest.mark.django_db


def test_the_newest_resolved_week_ends_28_days_or_more_ago():
    week = dt.date(2026, 4, 27)  # Monday 27 April to Sunday 3 May; 3 May + 28 days = 31 May
    assert resolved_weeks(today=dt.date(2026, 6, 1), weeks=2) == [week, week - dt.timedelta(days=7)]
    assert resolved_weeks(today=dt.date(2026, 5, 31), weeks=1) == [week]
    assert resolved_weeks(today=dt.date(2026, 5, 30), weeks=1) == [week - dt.timedelta(days=7)]


def predict(patient: Patient, version, *, tier: str, outcome: str, day: dt.date, made: dt.date | None = None):
    made = made or day - dt.timedelta(days=20)
    return Prediction.objects.create(
        patient=patient,
        facility=patient.facility,
        model_version=version,
        score=0.5,
        risk_level=tier,
        as_of=dt.datetime.combine(made, dt.time(12), tzinfo=dt.UTC),
        appointment_date=day,
        outcome=outcome,
    )


@pytest.fixture
def crafted(facility, other_facility) -> dt.date:
    """Nine patients of facility A in the newest resolved week, one of B; the rows the rules leave out beside
    them. Returns the week's Monday."""
    [week] = resolved_weeks(today=timezone.localdate(), weeks=1)
    version = stub_version()
    a = evaluation_data.patients(facility, 14)
    b = evaluation_data.patients(other_facility, 1, prefix="B")
    tuesday, friday = week + dt.timedelta(days=1), week + dt.timedelta(days=4)
    for patient, tier, outcome in [
        (a[0], "very_high", "iit"),
        (a[1], "very_high", "retained"),
        (a[2], "high", "iit"),
        (a[3], "high", "retained"),
        (a[4], "medium", "iit"),
        (a[5], "low", "iit"),
        (a[6], "low", "retained"),
        (a[7], "medium", "retained"),
        (b[0], "low", "retained"),
    ]:
        predict(patient, version, tier=tier, outcome=outcome, day=tuesday)
    predict(a[7], version, tier="very_high", outcome="iit", day=friday)  # a later appointment the same week
    predict(a[8], version, tier="low", outcome="retained", day=tuesday)  # rescored before the appointment:
    predict(a[8], version, tier="high", outcome="retained", day=tuesday, made=tuesday)  # the last one counts
    late = tuesday + dt.timedelta(days=29)  # made once the interruption was already settled: no foresight
    predict(a[9], version, tier="very_high", outcome="iit", day=tuesday, made=late)
    predict(a[10], version, tier="very_high", outcome="pending", day=tuesday)
    predict(a[11], version, tier="very_high", outcome="excluded", day=tuesday)
    predict(a[12], version, tier="very_high", outcome="iit", day=week + dt.timedelta(days=7))  # not resolved yet
    predict(a[13], version, tier="medium", outcome="iit", day=week - dt.timedelta(days=3))  # the week before
    return week


def test_tier_counts_sensitivity_and_ppv_are_those_worked_out_by_hand(crafted):
    week = crafted
    rows = facility_workload(today=timezone.localdate(), weeks=2)
    assert [(row["week"], row["facility"]) for row in rows] == [
        (week, "FAC-A"),
        (week, "FAC-B"),
        (week - dt.timedelta(days=7), "FAC-A"),
    ]
    a, b, before = rows
    # Facility A: very high 2 (1 interrupted), high 3 (1), medium 2 (1), low 2 (1): 4 interruptions in 9.
    assert (a["patients"], a["interruptions"]) == (9, 4)
    assert a["tiers"] == {"very_high": 2, "high": 3, "medium": 2, "low": 2}
    assert a["cutoffs"] == [
        {"tier": "very_high", "flagged": 2, "found": 1, "sensitivity": 1 / 4, "ppv": 1 / 2},
        {"tier": "high", "flagged": 5, "found": 2, "sensitivity": 2 / 4, "ppv": 2 / 5},
        {"tier": "medium", "flagged": 7, "found": 3, "sensitivity": 3 / 4, "ppv": 3 / 7},
    ]
    # Facility B: nobody interrupted, nobody flagged: neither figure is defined.
    assert (b["patients"], b["interruptions"], b["tiers"]["low"]) == (1, 0, 1)
    assert all(cut["sensitivity"] is None and cut["ppv"] is None for cut in b["cutoffs"])
    assert (before["patients"], before["cutoffs"][2]["sensitivity"], before["cutoffs"][1]["ppv"]) == (1, 1.0, None)


def test_the_daily_report_shows_the_newest_week_and_the_console_the_reports_weeks(crafted, client, staff):
    week = crafted
    client.force_login(staff)
    assert "No health report yet" in client.get(reverse("admin:monitoring_console_workload")).content.decode()
    report = health_report_build()
    workload = report.content["workload"]
    assert [(row["week"], row["facility"]) for row in workload] == [
        (week.isoformat(), "FAC-A"),
        (week.isoformat(), "FAC-B"),
        ((week - dt.timedelta(days=7)).isoformat(), "FAC-A"),
    ]
    assert f"FAC-A, week of {week}: 9 patients, 4 interrupted; very high / high / medium / low 2 / 3 / 2 / 2" in (
        report.text
    )
    assert "down to high: sensitivity 0.50, PPV 0.40 (2 of 5 traced interrupted)" in report.text
    assert f"FAC-A, week of {week - dt.timedelta(days=7)}" not in report.text  # the newest week only
    assert "<td>0.25 / 0.50</td>" in report.html
    page = client.get(reverse("admin:monitoring_console_workload")).content.decode()
    assert "<td>2 / 3 / 2 / 2</td>" in page and "0.25 / 0.50 <small>(1/2)</small>" in page
    assert "0.75 / 0.43" in page and str(week - dt.timedelta(days=7)) in page


def test_on_a_messy_cohort_the_figures_agree_with_a_recount_and_the_tiers_find_interruptions(trained_once):
    write_cohort()
    version = trained_once.register()
    predictions_backfill(weeks=12)
    prediction_outcomes_resolve()
    today = version.validation_window_end + dt.timedelta(days=40)
    rows = facility_workload(today=today, weeks=12)
    assert len({row["week"] for row in rows}) >= 4 and {row["facility"] for row in rows} == {"SYN-001", "SYN-002"}

    recount = _recount(start=min(row["week"] for row in rows), end=max(row["week"] for row in rows))
    for row in rows:
        expected = recount[(row["week"], row["facility"])]
        assert (row["patients"], row["interruptions"]) == (expected["patients"], expected["interruptions"])
        assert sum(row["tiers"].values()) == row["patients"]
        flagged = [cut["flagged"] for cut in row["cutoffs"]]
        assert flagged == sorted(flagged) and flagged[-1] <= row["patients"]
        assert flagged[1] == row["tiers"]["very_high"] + row["tiers"]["high"]
    # The tiers carry the model's signal: tracing high and above finds a larger share of interruptions than
    # the share of patients it traces.
    found = sum(row["cutoffs"][1]["found"] for row in rows) / sum(row["interruptions"] for row in rows)
    traced = sum(row["cutoffs"][1]["flagged"] for row in rows) / sum(row["patients"] for row in rows)
    assert found > traced


def _recount(*, start: dt.date, end: dt.date) -> dict:
    """Patients and interruptions per (week, facility) counted with pandas from the stored predictions."""
    frame = pd.DataFrame(
        Prediction.objects.filter(outcome__in=("iit", "retained")).values(
            "id", "patient_id", "appointment_date", "as_of", "outcome", "facility__code"
        )
    )
    frame = frame[frame["as_of"].dt.date <= frame["appointment_date"] + dt.timedelta(days=28)]
    frame = frame.sort_values("id").groupby(["patient_id", "appointment_date"], as_index=False).last()
    frame["week"] = frame["appointment_date"].map(lambda day: day - dt.timedelta(days=day.weekday()))
    frame = frame[(frame["week"] >= start) & (frame["week"] <= end)]
    first = frame.sort_values("appointment_date").groupby(["week", "patient_id"], as_index=False).first()
    first["iit"] = first["outcome"] == "iit"
    grouped = first.groupby(["week", "facility__code"]).agg(
        patients=("patient_id", "size"), interruptions=("iit", "sum")
    )
    return {key: {"patients": int(r.patients), "interruptions": int(r.interruptions)} for key, r in grouped.iterrows()}
