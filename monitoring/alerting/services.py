"""Staff actions on an alert: acknowledge, snooze, resolve, each recorded with user and note."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from monitoring.alerting.notifications.dispatch import notify_alert
from monitoring.alerting.state import record_event, transition
from monitoring.models import Alert

S = Alert.State


class AlertStateError(Exception):
    """The alert is not in a state the action applies to (or someone changed it first)."""


def _get_alert(alert_id: int) -> Alert:
    return Alert.objects.select_related("rule").get(pk=alert_id)


def alert_acknowledge(*, alert_id: int, user, note: str = "", now: dt.datetime | None = None) -> Alert:
    now = now or timezone.now()
    with transaction.atomic():
        alert = _get_alert(alert_id)
        fields = {"acknowledged_at": now, "acknowledged_by": user, "snoozed_until": None}
        if not transition(alert=alert, old=(S.FIRING, S.SNOOZED), new=S.ACKNOWLEDGED, **fields):
            raise AlertStateError(f"only a firing or snoozed alert can be acknowledged (it is {alert.state})")
        record_event(alert=alert, kind="acknowledged", at=now, user=user, note=note)
    return alert


def alert_snooze(*, alert_id: int, user, until: dt.datetime, note: str = "", now: dt.datetime | None = None) -> Alert:
    now = now or timezone.now()
    if until <= now:
        raise AlertStateError("a snooze must end in the future")
    with transaction.atomic():
        alert = _get_alert(alert_id)
        if not transition(alert=alert, old=(S.FIRING, S.ACKNOWLEDGED, S.SNOOZED), new=S.SNOOZED, snoozed_until=until):
            raise AlertStateError(f"only a firing or acknowledged alert can be snoozed (it is {alert.state})")
        record_event(alert=alert, kind="snoozed", at=now, user=user, note=note or f"until {until:%Y-%m-%d %H:%M}")
    return alert


def alert_resolve(*, alert_id: int, user, note: str = "", now: dt.datetime | None = None) -> Alert:
    """Close an open alert by hand; a fired one notifies "resolve" like an automatic close."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = _get_alert(alert_id)
        if not transition(alert=alert, old=Alert.OPEN_STATES, new=S.RESOLVED, resolved_at=now):
            raise AlertStateError(f"the alert is already {alert.state}")
        record_event(alert=alert, kind="resolved", at=now, user=user, note=note)
        if alert.fired_at is not None:
            notify_alert(alert_id=alert.pk, event="resolve")
    return alert
