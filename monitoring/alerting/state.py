"""Alert state changes as conditional updates: the only way an alert's state moves.

``transition`` updates the row only if it is still in the state the caller
saw; exactly one caller wins a race, and only the winner records the event
and notifies.  That is what keeps two concurrent evaluators (or an evaluator
and a staff click) from notifying twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from monitoring.models import Alert, AlertEvent


def transition(*, alert: Alert, old: Iterable[str] | str, new: str, **fields) -> bool:
    olds = [old] if isinstance(old, str) else list(old)
    changed = Alert.objects.filter(pk=alert.pk, state__in=olds).update(state=new, **fields)
    if changed == 1:
        alert.state = new
        for name, value in fields.items():
            setattr(alert, name, value)
    return changed == 1


def record_event(*, alert: Alert, kind: str, at: dt.datetime, user=None, note: str = "") -> AlertEvent:
    return AlertEvent.objects.create(alert=alert, kind=kind, at=at, user=user, note=note)


def open_alert(*, rule_id: int, subject: str) -> Alert | None:
    return Alert.objects.filter(rule_id=rule_id, subject=subject, state__in=Alert.OPEN_STATES).first()
