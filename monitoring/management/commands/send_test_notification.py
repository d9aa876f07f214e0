"""Send a test message to the notification channels now, and say which answered."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from monitoring.alerting.notifications.dispatch import SENDERS, UnconfiguredChannel, notification_test_send


class Command(BaseCommand):
    help = (
        "Send a test notification to every configured channel (OPS_EMAILS, SLACK_WEBHOOK_URL, "
        "PAGERDUTY_ROUTING_KEY, ALERT_WEBHOOK_URL), or to one; each attempt is in the delivery log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--channel", choices=list(SENDERS), help="only this channel (default: all configured)")

    def handle(self, *args, channel: str | None, **options):
        try:
            deliveries = notification_test_send(
                channels=[channel] if channel else None, requested_by="manage.py send_test_notification"
            )
        except UnconfiguredChannel as exc:
            raise CommandError(str(exc)) from exc
        if not deliveries:
            raise CommandError("no notification channel is configured")
        for delivery in deliveries:
            answer = f"{delivery.response_code}" if delivery.response_code else "no answer"
            line = f"{delivery.channel}: {delivery.status} ({answer}, {delivery.duration_ms:.0f} ms) {delivery.error}"
            self.stdout.write(line.rstrip())
        failed = [delivery.channel for delivery in deliveries if delivery.status == delivery.Status.FAILED]
        if failed:
            raise CommandError(f"the test notification failed on: {', '.join(failed)}")
