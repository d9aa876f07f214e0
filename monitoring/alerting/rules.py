"""The alert rules of the monitoring guide, seeded once and then owned by staff.

Two tables of the guide feed this list: "Alert Configuration" (critical and
warning rows, with their actions verbatim) and "Key Metrics to Monitor" (its
thresholds that the first table lacks: memory > 85%, CPU > 80%, DB query
P95 > 2s, cache hit ratio < 70%, AUC < 0.75).  The guide's error rate counts
server errors (5xx); client errors (4xx) have a warning of their own, at a rate
no run of human mistakes reaches but a client retrying a bad request does
(CLIENT_ERROR_RATE_PER_HOUR, held 15 minutes).  Each rule's runbook anchor is
the slug of its name in docs/RUNBOOK.md.  "Scheduled job late" is the
dead-man's switch of the scheduled jobs (not in the guide): one alert per job
whose last success is older than its deadline (monitoring/evaluation/jobs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.text import slugify

from monitoring.models import AlertRule

RUNBOOK_PATH = "docs/RUNBOOK.md"

CRITICAL = AlertRule.Severity.CRITICAL
WARNING = AlertRule.Severity.WARNING
GT = AlertRule.Comparison.GT
LT = AlertRule.Comparison.LT


@dataclass(frozen=True)
class RuleSeed:
    name: str
    metric: str
    comparison: str
    threshold: float
    duration_seconds: int
    severity: str
    summary: str
    action: str

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_PATH}#{slugify(self.name)}"


# 4xx answers per hour that signal a broken client: a script retrying one bad request every
# 12 s.  Prometheus' ClientErrorRateWarning (monitoring/alert_rules.yml) uses the same figure.
CLIENT_ERROR_RATE_PER_HOUR = 300

# The newest backup may be 26 hours old (a daily job and two hours' grace), the newest successful restore
# check 8 days; Prometheus' BackupStale and BackupRestoreCheckStale use the same figures.
BACKUP_MAX_AGE_SECONDS = 26 * 3600
RESTORE_CHECK_MAX_AGE_SECONDS = 8 * 24 * 3600

# Metric names are MetricSample names written by the system job, plus those
# read from elsewhere: service_up, model_auc, model_drift_detected, model_estimated_auc (the
# performance_estimate job), model_multivariate_drift (the drift job's PCA reconstruction error), backup_age_seconds,
# backup_restore_check_age_seconds, and job_overdue_seconds (per scheduled job: one alert per job past
# its deadline).
# (name, metric, comparison, threshold, duration_seconds, summary, action)
_CRITICAL_ROWS = (
    ("Service down", "service_up", LT, 1, 60, "Service down", "Restart service"),
    ("Error rate critical", "error_rate_per_hour", GT, 100, 300, "Error rate > 100/hour", "Scale up"),
    (
        "Prediction latency critical",
        "prediction_p95_seconds",
        GT,
        5,
        300,
        "Prediction latency P95 > 5s",
        "Investigate model",
    ),
    (
        "Database query latency critical",
        "db_query_p95_seconds",
        GT,
        3,
        300,
        "Database query P95 > 3s",
        "Optimize queries",
    ),
    ("Memory usage critical", "memory_percent", GT, 90, 300, "Memory usage > 90%", "Scale database"),
    ("Model drift detected", "model_drift_detected", GT, 0, 0, "Model drift detected", "Retrain model"),
    ("Cache hit ratio critical", "cache_hit_ratio", LT, 0.5, 600, "Cache hit ratio < 50%", "Check Redis config"),
    (
        "Backup stale",
        "backup_age_seconds",
        GT,
        BACKUP_MAX_AGE_SECONDS,
        0,
        "No successful database backup for 26 hours",
        "Check the backup job's last run and the backup storage",
    ),
)
_WARNING_ROWS = (
    ("Error rate warning", "error_rate_per_hour", GT, 50, 300, "Error rate > 50/hour", "Monitor traffic"),
    (
        "Client error rate warning",
        "client_error_rate_per_hour",
        GT,
        CLIENT_ERROR_RATE_PER_HOUR,
        900,
        f"Client errors (4xx) > {CLIENT_ERROR_RATE_PER_HOUR}/hour",
        "Find and fix the broken client",
    ),
    (
        "Prediction latency warning",
        "prediction_p95_seconds",
        GT,
        3,
        300,
        "Prediction latency P95 > 3s",
        "Check system resources",
    ),
    (
        "Database query latency warning",
        "db_query_p95_seconds",
        GT,
        2,
        300,
        "Database query P95 > 2s",
        "Optimize queries",
    ),
    ("Memory usage warning", "memory_percent", GT, 80, 300, "Memory usage > 80%", "Check for memory leaks"),
    ("Memory usage high", "memory_percent", GT, 85, 300, "Memory usage > 85%", "Check for memory leaks"),
    ("CPU usage warning", "cpu_percent", GT, 70, 600, "CPU usage > 70%", "Profile application"),
    ("CPU usage high", "cpu_percent", GT, 80, 300, "CPU usage > 80%", "Profile application"),
    ("Cache hit ratio warning", "cache_hit_ratio", LT, 0.7, 600, "Cache hit ratio < 70%", "Check Redis config"),
    ("Model AUC low", "model_auc", LT, 0.75, 0, "Model AUC < 0.75", "Review model performance and retrain if needed"),
    (
        "Model estimated AUC low",
        "model_estimated_auc",
        LT,
        0.75,
        0,
        "Estimated AUC of the latest snapshot < 0.75 (before its outcomes)",
        "Check the estimate's reliability and drift; prepare a retrain",
    ),
    (
        "Model multivariate drift",
        "model_multivariate_drift",
        GT,
        0,
        0,
        "PCA reconstruction error outside the reference band",
        "Find the features whose relationship changed; retrain if it persists",
    ),
    (
        "Scheduled job late",
        "job_overdue_seconds",
        GT,
        0,
        0,
        "No success within the job's deadline (seconds past it)",
        "Check beat and the worker, then the job's last run",
    ),
    (
        "Restore check stale",
        "backup_restore_check_age_seconds",
        GT,
        RESTORE_CHECK_MAX_AGE_SECONDS,
        0,
        "No backup restored with its row counts for 8 days",
        "Read the restore check's last run; restore the newest backup by hand",
    ),
)
RULE_SEEDS: tuple[RuleSeed, ...] = tuple(
    RuleSeed(name, metric, comparison, threshold, duration, severity, summary, action)
    for severity, rows in ((CRITICAL, _CRITICAL_ROWS), (WARNING, _WARNING_ROWS))
    for name, metric, comparison, threshold, duration, summary, action in rows
)


def seed_alert_rules() -> int:
    """Create the guide's rules that do not exist yet; never overwrite a staff edit.

    Returns how many rules were created, so running it at every deploy is safe.
    """
    created = 0
    for seed in RULE_SEEDS:
        _, was_created = AlertRule.objects.get_or_create(
            name=seed.name,
            defaults={
                "metric": seed.metric,
                "comparison": seed.comparison,
                "threshold": seed.threshold,
                "duration_seconds": seed.duration_seconds,
                "severity": seed.severity,
                "summary": seed.summary,
                "action": seed.action,
                "runbook_url": seed.runbook_url,
            },
        )
        created += was_created
    return created
