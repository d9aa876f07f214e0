"""Slack incoming webhook: a plain-text message (mrkdwn) to the configured channel."""

from __future__ import annotations

from django.conf import settings

from monitoring.alerting.notifications.http import post_json
from monitoring.alerting.notifications.message import AlertMessage


def send(message: AlertMessage) -> int:
    text = f"*{message.title}*\n{message.text}\nAction: {message.action}\n<{message.console_url}|Console>"
    if message.runbook_url.startswith(("http://", "https://")):
        text += f" · <{message.runbook_url}|Runbook>"
    elif message.runbook_url:
        text += f" · Runbook: {message.runbook_url}"
    return post_json(settings.SLACK_WEBHOOK_URL, {"text": text})
