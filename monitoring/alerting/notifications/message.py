"""What every channel says about an alert, built once from the row."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from monitoring.models import Alert


@dataclass(frozen=True)
class AlertMessage:
    alert_id: int  # 0 for a test message
    event: str  # trigger, resolve, or test
    rule: str
    subject: str
    severity: str
    state: str
    value: float | None
    text: str
    action: str
    runbook_url: str  # a URL; a path in the repository (docs/RUNBOOK.md#anchor) when RUNBOOK_BASE_URL is empty
    console_url: str
    at: str

    @property
    def dedup_key(self) -> str:
        """Stable per alert, so PagerDuty's resolve closes the incident its trigger opened; one per test."""
        if self.event == "test":
            return f"iit-ml-service-test-{self.at}"
        return f"iit-ml-service-alert-{self.alert_id}"

    @property
    def title(self) -> str:
        verb = {"trigger": "FIRING", "resolve": "RESOLVED"}.get(self.event, "TEST")
        subject = f" ({self.subject})" if self.subject else ""
        return f"[IIT {self.severity.upper()}] {verb}: {self.rule}{subject}"

    def as_dict(self) -> dict:
        return {
            "alert_id": self.alert_id,
            "event": self.event,
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity,
            "state": self.state,
            "value": self.value,
            "message": self.text,
            "action": self.action,
            "runbook_url": self.runbook_url,
            "console_url": self.console_url,
            "at": self.at,
        }

    def body(self) -> str:
        return (
            f"{self.title}\n\n{self.text}\nAction: {self.action}\n"
            f"Runbook: {self.runbook_url}\nConsole: {self.console_url}\n"
        )


def alert_message(*, alert: Alert, event: str) -> AlertMessage:
    at = alert.resolved_at if event == "resolve" and alert.resolved_at else alert.fired_at or alert.pending_since
    return AlertMessage(
        alert_id=alert.pk,
        event=event,
        rule=alert.rule.name,
        subject=alert.subject,
        severity=alert.severity,
        state=alert.state,
        value=alert.value,
        text=alert.message,
        action=alert.rule.action,
        runbook_url=runbook_link(alert.rule.runbook_url),
        console_url=f"{settings.SITE_URL}/admin/monitoring/console/alerts/?alert={alert.pk}",
        at=at.isoformat(),
    )


TEST_RUNBOOK = "docs/RUNBOOK.md#test-notifications"


def test_message(*, channel: str, requested_by: str) -> AlertMessage:
    """A message that says it is a test, in the shape every channel sends: proof the channel reaches on-call."""
    return AlertMessage(
        alert_id=0,
        event="test",
        rule="Test notification",
        subject=channel,
        severity="info",
        state="test",
        value=None,
        text=f"A test notification from the IIT ML Service, sent by {requested_by} to check this channel.",
        action="None: if you read this, alerts reach you here",
        runbook_url=runbook_link(TEST_RUNBOOK),
        console_url=f"{settings.SITE_URL}/admin/monitoring/console/alerts/",
        at=timezone.now().isoformat(),
    )


def runbook_link(runbook_url: str) -> str:
    """A rule's runbook as a clickable URL: a repository path is joined to RUNBOOK_BASE_URL when that is set."""
    base = settings.RUNBOOK_BASE_URL
    if not base or not runbook_url or runbook_url.startswith(("http://", "https://")):
        return runbook_url
    return f"{base}/{runbook_url.lstrip('/')}"
