"""PagerDuty Events API v2: "trigger" on fire, "resolve" on close, one dedup key per alert.

A test message is a "trigger" of severity "info" with a dedup key of its own: it opens an incident
that on-call resolves in PagerDuty, which proves the whole path.
"""

from __future__ import annotations

from django.conf import settings

from monitoring.alerting.notifications.http import post_json
from monitoring.alerting.notifications.message import AlertMessage


def send(message: AlertMessage) -> int:
    event: dict[str, object] = {
        "routing_key": settings.PAGERDUTY_ROUTING_KEY,
        "event_action": "resolve" if message.event == "resolve" else "trigger",
        "dedup_key": message.dedup_key,
    }
    if message.event != "resolve":
        event["payload"] = {
            "summary": message.title[:1024],
            "source": "iit-ml-service",
            "severity": message.severity,  # "critical", "warning" and a test's "info" are PagerDuty severities too
            "timestamp": message.at,
            "component": message.rule,
            "custom_details": message.as_dict(),
        }
        links = [{"href": message.console_url, "text": "Admin console"}]
        if message.runbook_url.startswith(("http://", "https://")):
            links.append({"href": message.runbook_url, "text": "Runbook"})
        event["links"] = links
    return post_json(settings.PAGERDUTY_EVENTS_URL, event)
