"""The ops health report: built from the console's reads, stored, and emailed (HTML and text).

``health_report_build_and_send`` is the ``health_report`` job (daily by
default).  The report is stored first, then emailed, so a mail outage still
leaves the report in the console with the error that stopped it.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from monitoring.alerting.console import selectors
from monitoring.alerting.console.metrics import display_of, format_value
from monitoring.models import Alert, HealthReport

logger = logging.getLogger(__name__)

HEALTHY = "healthy"


def health_report_build_and_send(*, now: dt.datetime | None = None) -> HealthReport:
    report = health_report_build(now=now)
    return health_report_send(report=report)


def health_report_build(*, now: dt.datetime | None = None) -> HealthReport:
    end = now or timezone.now()
    start = end - dt.timedelta(hours=settings.HEALTH_REPORT_PERIOD_HOURS)
    content = report_content(start=start, end=end)
    context = {"report": content, "site_url": settings.SITE_URL}
    return HealthReport.objects.create(
        created_at=end,
        period_start=start,
        period_end=end,
        status=content["status"],
        content=content,
        text=render_to_string("monitoring/health_report.txt", context),
        html=render_to_string("monitoring/health_report.html", context),
    )


def health_report_send(*, report: HealthReport) -> HealthReport:
    """Email the stored report to OPS_EMAILS; record who it went to, or why it did not."""
    recipients = list(settings.OPS_EMAILS)
    if not recipients:
        report.email_error = "OPS_EMAILS is empty: report stored, not emailed"
        report.save(update_fields=["email_error"])
        return report
    message = EmailMultiAlternatives(
        subject=f"[IIT] Health report {report.period_end:%Y-%m-%d}: {report.status}{_attention_note(report)}",
        body=report.text,
        to=recipients,
    )
    message.attach_alternative(report.html, "text/html")
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("health report %s not emailed: %s", report.pk, exc)
        report.email_error = f"{type(exc).__name__}: {exc}"[:2000]
        report.save(update_fields=["email_error"])
        return report
    report.emailed_to, report.emailed_at, report.email_error = recipients, timezone.now(), ""
    report.save(update_fields=["emailed_to", "emailed_at", "email_error"])
    return report


def _attention_note(report: HealthReport) -> str:
    count = len(report.content.get("attention", []))
    return f", {count} to look at" if count else ""


def report_content(*, start: dt.datetime, end: dt.datetime) -> dict:
    """Everything the report says, as JSON: stored on the row and rendered by both templates."""
    content: dict[str, Any] = {
        "period": {"start": _iso(start), "end": _iso(end), "hours": settings.HEALTH_REPORT_PERIOD_HOURS},
        "health": _health(),
        "database": _database(),
        "jobs": _jobs(start=start, end=end),
        "alerts": _alerts(start=start, end=end),
        "model": _model(),
        "predictions_by_tier": selectors.predictions_by_tier(start=start, end=end),
        "service_metrics": _service_metrics(start=start, end=end),
        "workload": _workload(today=timezone.localtime(end).date()),
    }
    content["predictions_total"] = sum(content["predictions_by_tier"].values())
    # One verdict, /health's own (monitoring.observability.health): the headline and the body say the same.
    content["status"] = content["health"]["status"]
    content["attention"] = attention(content)
    return content


def attention(content: dict) -> list[str]:
    """What else needs a look, beside the health verdict: open alerts (critical first), failed jobs, drift."""
    alerts = sorted(content["alerts"]["open"], key=lambda alert: alert["severity"] != "critical")
    items = [f"{alert['severity']} alert open: {alert['rule']}" for alert in alerts]
    failed = [job for job in content["jobs"] if job["failed"]]
    items += [f"job {job['job']} failed {job['failed']} of {job['runs']} runs" for job in failed]
    if (content["model"]["drift"] or {}).get("drift_detected"):
        items.append("model drift detected")
    return items


def _health() -> dict:
    from monitoring.observability.health import health_check

    return health_check().as_dict()


def _database() -> dict:
    from monitoring.observability.health import database_health, table_sizes

    database = database_health()
    database["table_sizes"] = table_sizes() if database["database_status"] == HEALTHY else {}
    return database


def _jobs(*, start: dt.datetime, end: dt.datetime) -> list[dict]:
    rows = selectors.job_runs_summary(start=start, end=end)
    return [{**row, "last_started": _iso(row["last_started"])} for row in rows]


def _alerts(*, start: dt.datetime, end: dt.datetime) -> dict:
    opened = selectors.alerts_opened(start=start, end=end)
    return {
        "opened": opened.count(),
        "opened_by_severity": selectors.alerts_by_severity(start=start, end=end),
        "opened_list": [_alert(a) for a in opened.order_by("-pending_since")[:20]],
        "open": [_alert(a) for a in selectors.alerts_open()[:50]],
    }


def _alert(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "rule": alert.rule.name,
        "subject": alert.subject,
        "severity": alert.severity,
        "state": alert.state,
        "value": alert.value,
        "pending_since": _iso(alert.pending_since),
        "fired_at": _iso(alert.fired_at),
        "resolved_at": _iso(alert.resolved_at),
        "action": alert.rule.action,
    }


def _model() -> dict:
    versions = [v for v in selectors.model_versions(limit=20) if v.is_active]
    auc, drift = selectors.auc_latest(), selectors.drift_latest()
    return {
        "active_version": versions[0].version if versions else None,
        "auc": None
        if auc is None
        else {
            "version": auc.model_version.version,
            "evaluated_at": _iso(auc.evaluated_at),
            "status": auc.status,
            "roc_auc": auc.roc_auc,
            "roc_auc_lower": auc.roc_auc_lower,
            "roc_auc_upper": auc.roc_auc_upper,
            "n_labelled": auc.n_labelled,
            "n_events": auc.n_events,
            "brier": auc.brier,
        },
        "drift": None
        if drift is None
        else {
            "version": drift.model_version.version,
            "evaluated_at": _iso(drift.evaluated_at),
            "status": drift.status,
            "drift_detected": drift.drift_detected,
            "share_drifted": drift.share_drifted,
            "drifted_features": drift.drifted_features,
            "n_rows": drift.n_rows,
        },
    }


def _workload(*, today: dt.date) -> list[dict]:
    """Each facility's tier counts, sensitivity and PPV in the newest resolved weeks
    (monitoring.evaluation.workload): the report shows the newest, the console's Workload page all of them."""
    from monitoring.evaluation.workload import REPORTED_WEEKS, facility_workload

    rows = facility_workload(today=today, weeks=REPORTED_WEEKS)
    return [{**row, "week": row["week"].isoformat()} for row in rows]


def _service_metrics(*, start: dt.datetime, end: dt.datetime) -> dict:
    latest = selectors.metrics_latest()
    extremes = selectors.metric_extremes(start=start, end=end)
    metrics = {}
    for name, sample in latest.items():
        values = {
            "latest": sample.value if sample else None,
            "avg": extremes.get(name, {}).get("avg"),
            "max": extremes.get(name, {}).get("max"),
        }
        metrics[name] = {
            **values,
            "latest_at": _iso(sample.recorded_at) if sample else None,
            # As the console shows them: a human name, values with their unit.
            "label": display_of(name).label,
            "shown": {key: "-" if value is None else format_value(name, value) for key, value in values.items()},
        }
    return metrics


def _iso(value: dt.datetime | None) -> str | None:
    return value.replace(microsecond=0).isoformat() if value else None
