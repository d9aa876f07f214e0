"""Generic webhook: the whole alert message as JSON."""

from __future__ import annotations

from django.conf import settings

from monitoring.alerting.notifications.http import post_json
from monitoring.alerting.notifications.message import AlertMessage


def send(message: AlertMessage) -> int:
    return post_json(settings.ALERT_WEBHOOK_URL, {"source": "iit-ml-service", **message.as_dict()})
