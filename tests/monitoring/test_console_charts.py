"""The console's charts and figures read at a glance: round axes, labels that fit, units and thresholds.

Drawing is checked here on the markup; test_console_layout.py measures the same charts as Chromium lays them out.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from monitoring.alerting import seed_alert_rules
from monitoring.alerting.console import charts
from monitoring.alerting.console.metrics import metric_rows
from monitoring.alerting.console.pages import missing_rate_changes, ranked_features
from monitoring.models import AlertRule, JobRun, MetricSample

DAY = 86400.0


def texts(svg: str) -> list[tuple[float, str, str]]:
    """(x, anchor, label) of every text of a chart."""
    found = re.findall(
        r'<text class="chart-text" x="([\d.]+)" y="[\d.]+" font-size="\d+" text-anchor="(\w+)"[^>]*>([^<]*)<', svg
    )
    return [(float(x), anchor, label) for x, anchor, label in found]


def test_a_series_with_fewer_than_three_points_says_not_enough_data_yet():
    two = charts.line_chart([charts.Series("AUC", [(0, 0.8), (DAY, 0.81)])], title="AUC")
    three = charts.line_chart([charts.Series("AUC", [(0, 0.8), (DAY, 0.81), (2 * DAY, 0.79)])], title="AUC")
    assert "Not enough data yet: 2 of 3 points" in two and "<polyline" not in two
    assert "Not enough data yet" not in three and "<polyline" in three
    assert "No data yet" in charts.line_chart([charts.Series("AUC", [])], title="AUC")


def test_axes_step_in_round_numbers():
    assert charts.nice_range(12, 50) == (10, 50, [10, 20, 30, 40, 50])
    low, high, ticks = charts.nice_range(0.751, 0.84)
    assert (round(low, 3), round(high, 3)) == (0.75, 0.85) and len(ticks) == 5


def test_dates_are_as_short_as_the_span_allows():
    start = dt.datetime(2026, 12, 4, 22, tzinfo=dt.UTC).timestamp()
    assert charts.time_format(start, start + DAY)(start) == "04 Dec 22:00"
    assert charts.time_format(start, start + 60 * DAY)(start) == "04 Dec"
    assert charts.time_format(start, start + 700 * DAY)(start) == "Dec 2026"


def test_long_category_labels_are_thinned_and_shortened_so_none_touches_the_next():
    labels = [f"[{i * 12.3456:.4g}, {(i + 1) * 12.3456:.4g})" for i in range(14)]
    svg = charts.bar_chart(labels, [("reference", [1.0] * 14, "#aaa"), ("current", [2.0] * 14, "#00f")], title="bins")
    shown = [(x, label) for x, anchor, label in texts(svg) if label in labels or label.endswith("…")]
    assert 2 <= len(shown) < len(labels)
    for (x1, a), (x2, b) in zip(shown, shown[1:], strict=False):
        assert x1 + charts.text_width(a) / 2 < x2 - charts.text_width(b) / 2
    assert all(f"<title>{label} current: 2</title>" in svg for label in labels)  # every full name in a tooltip


def test_the_outermost_time_labels_hang_inwards_instead_of_leaving_the_chart():
    points = [(i * DAY, float(i)) for i in range(10)]
    svg = charts.line_chart([charts.Series("x", points)], title="t")
    x_labels = [(x, anchor) for x, anchor, label in texts(svg) if re.fullmatch(r"\d\d \w\w\w", label)]
    assert x_labels[0][1] == "start" and x_labels[-1][1] == "end"
    assert all(0 <= x <= charts.WIDTH for x, _ in x_labels)


def test_tier_shares_are_stacked_to_100_percent_and_a_lone_bar_stays_narrow():
    svg = charts.tier_share_chart(["30 Nov"], [{"low": 30, "medium": 10, "very_high": 10}], title="tiers")
    bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="([\d.]+)" fill="[^"]+"><title>', svg)
    widths, heights = [float(w) for w, _ in bars], [float(h) for _, h in bars]
    assert heights[0] == pytest.approx(3 * heights[3], abs=0.2) and heights[2] == 0  # low 60 %, very high 20 %, high 0
    assert max(widths) <= charts.MAX_BAR
    assert "<title>30 Nov very high: 20</title>" in svg


@pytest.mark.django_db
def test_service_metrics_read_as_names_with_units_thresholds_and_state():
    seed_alert_rules()
    now = timezone.now()
    samples = {
        "memory_percent": MetricSample.objects.create(name="memory_percent", value=86.0, recorded_at=now),
        "cache_hit_ratio": MetricSample.objects.create(name="cache_hit_ratio", value=0.45, recorded_at=now),
        "cpu_percent": MetricSample.objects.create(name="cpu_percent", value=12.5, recorded_at=now),
        "db_query_p95_seconds": None,
    }
    rows = {row["name"]: row for row in metric_rows(samples, AlertRule.objects.all())}
    memory = rows["memory_percent"]
    assert (memory["label"], memory["value"], memory["state"]) == ("Memory use", "86.0%", "warning")
    assert [t["text"] for t in memory["thresholds"]] == ["warning > 80.0%", "warning > 85.0%", "critical > 90.0%"]
    assert (rows["cache_hit_ratio"]["value"], rows["cache_hit_ratio"]["state"]) == ("45%", "critical")
    assert rows["cpu_percent"]["state"] == "ok"
    assert (rows["db_query_p95_seconds"]["value"], rows["db_query_p95_seconds"]["state"]) == (None, "none")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_the_overview_shows_no_raw_metric_identifier(staff_client):
    seed_alert_rules()
    MetricSample.objects.create(name="memory_percent", value=91.0, recorded_at=timezone.now())
    body = staff_client.get(reverse("admin:monitoring_console_overview")).content.decode()
    visible = re.sub(r'(title|id|class)="[^"]*"', "", body)
    assert "Memory use" in visible and "memory_percent" not in visible
    assert 'class="metric-state-critical" id="metric-memory_percent"' in body
    assert "critical &gt; 90.0%" in body


def test_the_system_jobs_summary_is_shown_in_words(staff_client):
    now = timezone.now()
    JobRun.objects.create(
        job="system", status="succeeded", started_at=now, finished_at=now,
        summary="system: cpu_percent=12.5, memory_used_bytes=2.281e+09",
        figures={"samples": {"cpu_percent": 12.5, "memory_used_bytes": 2.281e9}},
    )  # fmt: skip
    body = staff_client.get(reverse("admin:monitoring_console_jobs")).content.decode()
    assert "system: CPU use 12.5%, Memory in use 2.1\xa0GB" in body and "memory_used_bytes=" not in body


def test_the_schedule_table_counts_the_same_runs_as_the_last_7_days(staff_client):
    call_command("setup_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    now = timezone.now()
    for days in (1, 3, 5, 9):  # the run 9 days ago is outside both counts
        at = now - dt.timedelta(days=days)
        JobRun.objects.create(job="drift", trigger="manual", status="succeeded", started_at=at, finished_at=at)
    context = staff_client.get(reverse("admin:monitoring_console_jobs")).context
    [drift] = [task for task in context["periodic_tasks"] if task["job"] == "drift"]
    [summary] = [row for row in context["summary"] if row["job"] == "drift"]
    assert drift["runs_7d"] == summary["runs"] == 3


def feature(name: str, reference: float, current: float) -> dict:
    return {"feature": name, "psi": 0.0, "importance": 0.1, "missing_reference": reference, "missing_current": current}


def test_missing_rate_changes_list_only_changes_of_half_a_point_or_more():
    features = ranked_features([feature("cd4", 0.10, 0.18), feature("age", 0.0, 0.0), feature("vl", 0.05, 0.052)])
    [cd4] = missing_rate_changes(features)
    assert cd4["feature"] == "cd4" and cd4["change_points"] == pytest.approx(8.0)


def test_with_no_missing_rate_change_the_drift_page_says_so(staff_client, patient):
    from tests.monitoring import console_data

    console_data.history(weeks=1, patient=patient)
    from monitoring.models import DriftEvaluation

    evaluation = DriftEvaluation.objects.order_by("-evaluated_at").first()
    evaluation.features = [{**row, "missing_current": row["missing_reference"]} for row in evaluation.features]
    evaluation.save(update_fields=["features"])
    body = staff_client.get(reverse("admin:monitoring_console_drift")).content.decode()
    assert "No feature's missing rate moved by 0.5 percentage points or more." in body


@pytest.mark.parametrize("page", ["overview", "model", "drift", "alerts", "jobs", "reports"])
def test_on_an_empty_service_every_table_says_it_is_empty(staff_client, page):
    body = staff_client.get(reverse(f"admin:monitoring_console_{page}")).content.decode()
    tables = re.findall(r"<table>(.*?)</table>", body, flags=re.S)
    assert tables
    for table in tables:
        assert "<td" in table, table[:200]  # a row saying what is missing, never headers over nothing


def test_alert_rules_read_in_words_and_units(staff_client):
    seed_alert_rules()
    body = staff_client.get(reverse("admin:monitoring_console_alerts")).content.decode()
    assert "Memory use &gt; 90.0% for 5 min" in body
    assert "Age of the newest backup &gt; 1 d 2 h" in body and "93600" not in body
