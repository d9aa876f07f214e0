"""Service metrics as people read them: a human name, a value with its unit, the alert thresholds beside it.

The thresholds are the enabled alert rules on each metric (staff may change them in the admin), and a
value's state is the worst rule it breaks: what the alert evaluator would raise once the rule's duration
has passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.template.defaultfilters import filesizeformat

from monitoring.models import AlertRule, MetricSample


@dataclass(frozen=True)
class MetricDisplay:
    label: str
    unit: str  # after the number: "%", " s", "/h"; "bytes" formats as KB, MB, GB
    scale: float = 1.0  # a ratio shown in percent has scale 100
    digits: int = 1

    def format(self, value: float) -> str:
        if self.unit == "bytes":
            return str(filesizeformat(value))
        if self.unit == "duration":
            return span(int(value))
        shown = value * self.scale
        return f"{shown:,.{self.digits}f}{self.unit}"


DISPLAYS = {
    "error_rate_per_hour": MetricDisplay("Server errors (5xx)", "/h", digits=0),
    "client_error_rate_per_hour": MetricDisplay("Client errors (4xx)", "/h", digits=0),
    "prediction_p95_seconds": MetricDisplay("Prediction latency P95", " s", digits=2),
    "db_query_p95_seconds": MetricDisplay("Database query P95", " s", digits=3),
    "cpu_percent": MetricDisplay("CPU use", "%"),
    "memory_percent": MetricDisplay("Memory use", "%"),
    "memory_used_bytes": MetricDisplay("Memory in use", "bytes"),
    "memory_total_bytes": MetricDisplay("Memory in all", "bytes"),
    "cache_hit_ratio": MetricDisplay("Prediction cache hit rate", "%", scale=100, digits=0),
    "service_up": MetricDisplay("Service up (1 = yes)", "", digits=0),
    "model_auc": MetricDisplay("Model ROC-AUC", "", digits=2),
    "model_drift_detected": MetricDisplay("Drift detected (1 = yes)", "", digits=0),
    "backup_age_seconds": MetricDisplay("Age of the newest backup", "duration"),
    "backup_restore_check_age_seconds": MetricDisplay("Age of the newest restore check", "duration"),
    "job_overdue_seconds": MetricDisplay("Time a job is past its deadline", "duration"),
}

SEVERITY_ORDER = {"ok": 0, AlertRule.Severity.WARNING: 1, AlertRule.Severity.CRITICAL: 2}


def display_of(name: str) -> MetricDisplay:
    return DISPLAYS.get(name) or MetricDisplay(name.replace("_", " ").capitalize(), "", digits=3)


def format_value(name: str, value: float) -> str:
    return display_of(name).format(value)


def span(seconds: int) -> str:
    """30 s, 10 min, 1 h 30 min, 1 d 2 h, 7 d: the two largest units."""
    units = [("d", 86400), ("h", 3600), ("min", 60), ("s", 1)]
    parts = []
    for unit, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2]) or "0 s"


def condition(rule: AlertRule) -> str:
    """ "Memory use > 90.0% for 5 min": the rule in words and units."""
    display = display_of(rule.metric)
    held = f" for {span(rule.duration_seconds)}" if rule.duration_seconds else ""
    return f"{display.label} {rule.get_comparison_display()} {display.format(rule.threshold)}{held}"


def metric_rows(samples: dict[str, MetricSample | None], rules: Iterable[AlertRule]) -> list[dict]:
    """[{"name", "label", "value", "at", "thresholds": [{"text", "severity"}], "state"}] in ``samples``' order.

    ``state`` is "ok", "warning", "critical" or "none" (no sample yet).
    """
    by_metric: dict[str, list[AlertRule]] = {}
    for rule in rules:
        if rule.enabled:
            by_metric.setdefault(rule.metric, []).append(rule)
    rows = []
    for name, sample in samples.items():
        display = display_of(name)
        metric_rules = sorted(by_metric.get(name, []), key=lambda r: (SEVERITY_ORDER[r.severity], r.threshold))
        broken = [r.severity for r in metric_rules if sample is not None and r.holds(sample.value)]
        rows.append(
            {
                "name": name,
                "label": display.label,
                "value": display.format(sample.value) if sample is not None else None,
                "at": sample.recorded_at if sample is not None else None,
                "thresholds": [
                    {
                        "text": f"{r.severity} {r.get_comparison_display()} {display.format(r.threshold)}",
                        "severity": r.severity,
                    }
                    for r in metric_rules
                ],
                "state": max(broken, key=SEVERITY_ORDER.__getitem__, default="ok") if sample is not None else "none",
            }
        )
    return rows


def samples_text(samples: dict) -> str:
    """A run's samples in words: "CPU use 12.5%, Memory in use 2.3 GB, ..." (the system job's summary)."""
    return ", ".join(
        f"{display_of(name).label} {format_value(name, value)}"
        for name, value in samples.items()
        if isinstance(value, int | float)
    )
