"""Email to the ops list through Django's configured backend (SMTP in production)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from monitoring.alerting.notifications.http import DeliveryError
from monitoring.alerting.notifications.message import AlertMessage


def send(message: AlertMessage) -> int:
    email = EmailMessage(subject=message.title, body=message.body(), to=settings.OPS_EMAILS)
    try:
        email.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    return 250
