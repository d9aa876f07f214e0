"""Celery tasks of the alerting package: fetch by id, call the service, retry with backoff."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from monitoring.alerting.notifications.dispatch import notification_deliver, retry_delay


@shared_task(
    bind=True, name="monitoring.alerting.deliver_notification", max_retries=None, acks_late=True, ignore_result=True
)
def deliver_notification(self, alert_id: int, event: str, channel: str) -> str:
    delivery = notification_deliver(alert_id=alert_id, event=event, channel=channel, attempt=self.request.retries + 1)
    if delivery.status == delivery.Status.SENT:
        return "sent"
    if self.request.retries >= settings.NOTIFY_MAX_RETRIES:
        return "failed"
    raise self.retry(countdown=retry_delay(self.request.retries))
