"""PagerDuty Events API v2: "trigger" on fire, "resolve" on close, one dedup key per alert."""

from __future__ import annotations

from django.conf import settings

from monitoring.alerting.notifications.http import post_json
from monitoring.alerting.notifications.message import AlertMessage


def send(message: AlertMessage) -> int:
    event: dict[str, object] = {
        "routing_key": settings.PAGERDUTY_ROUTING_KEY,
        "event_action": message.event,
        "dedup_key": message.dedup_key,
    }
    if message.event == "trigger":
        event["payload"] = {
            "summary": message.title[:1024],
            "source": "iit-ml-service",
            "severity": message.severity,  # "critical" and "warning" are PagerDuty severities too
            "timestamp": message.at,
            "component": message.rule,
            "custom_details": message.as_dict(),
        }
        links = [{"href": message.console_url, "text": "Admin console"}]
        if message.runbook_url.startswith(("http://", "https://")):
            links.append({"href": message.runbook_url, "text": "Runbook"})
        event["links"] = links
    return post_json(settings.PAGERDUTY_EVENTS_URL, event)
