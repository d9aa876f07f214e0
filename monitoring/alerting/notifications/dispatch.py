"""Which channels are configured, and the delivery of one attempt to one of them."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.alerting.notifications import mail, pagerduty, slack, webhook
from monitoring.alerting.notifications.http import DeliveryError
from monitoring.alerting.notifications.message import AlertMessage, alert_message, test_message
from monitoring.models import Alert, NotificationDelivery

SENDERS: dict[str, Callable[[AlertMessage], int]] = {
    "email": mail.send,
    "slack": slack.send,
    "pagerduty": pagerduty.send,
    "webhook": webhook.send,
}


def configured_channels() -> list[str]:
    configured = {
        "email": bool(settings.OPS_EMAILS),
        "slack": bool(settings.SLACK_WEBHOOK_URL),
        "pagerduty": bool(settings.PAGERDUTY_ROUTING_KEY and settings.PAGERDUTY_EVENTS_URL),
        "webhook": bool(settings.ALERT_WEBHOOK_URL),
    }
    return [channel for channel, on in configured.items() if on]


def notify_alert(*, alert_id: int, event: str) -> None:
    """Enqueue one delivery task per channel once the state change is committed.

    Separate tasks mean a channel that fails (and retries) never delays another;
    ``robust`` keeps one failed enqueue from skipping the rest.
    """
    from monitoring.alerting.tasks import deliver_notification

    for channel in configured_channels():

        def enqueue(channel: str = channel) -> None:
            deliver_notification.delay(alert_id, event, channel)

        transaction.on_commit(enqueue, robust=True)


def notification_deliver(*, alert_id: int, event: str, channel: str, attempt: int) -> NotificationDelivery:
    """Send one attempt and log it, sent or failed."""
    alert = Alert.objects.select_related("rule").get(pk=alert_id)
    message = alert_message(alert=alert, event=event)
    return _attempt(message=message, channel=channel, alert=alert, attempt=attempt)


def notification_test_send(*, channels: list[str] | None = None, requested_by: str) -> list[NotificationDelivery]:
    """Send a test message to each of ``channels`` (default: every configured one) now; log each attempt.

    Synchronous, not through the worker: whoever asks sees at once whether each channel answered.
    A channel that is not configured is refused (UnconfiguredChannel), before anything is sent.
    """
    configured = configured_channels()
    channels = configured if channels is None else channels
    unconfigured = [channel for channel in channels if channel not in configured]
    if unconfigured:
        raise UnconfiguredChannel(
            f"not configured: {', '.join(unconfigured)} (configured: {', '.join(configured) or 'none'})"
        )
    return [
        _attempt(
            message=test_message(channel=channel, requested_by=requested_by), channel=channel, requested_by=requested_by
        )
        for channel in channels
    ]


class UnconfiguredChannel(ValueError):
    pass


def _attempt(
    *, message: AlertMessage, channel: str, alert: Alert | None = None, attempt: int = 1, requested_by: str = ""
) -> NotificationDelivery:
    started = time.perf_counter()
    code, error = None, ""
    try:
        code = SENDERS[channel](message)
    except DeliveryError as exc:
        code, error = exc.response_code, str(exc)
    return NotificationDelivery.objects.create(
        alert=alert,
        event=message.event,
        channel=channel,
        attempt=attempt,
        requested_by=requested_by,
        status=NotificationDelivery.Status.FAILED if error else NotificationDelivery.Status.SENT,
        response_code=code,
        error=error[:2000],
        attempted_at=timezone.now(),
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def retry_delay(retries: int) -> float:
    """Exponential backoff: base, 2x base, 4x base… capped at one hour."""
    return min(settings.NOTIFY_RETRY_BASE_SECONDS * 2**retries, 3600.0)
