"""The alert evaluator: one pass over the enabled rules, run by the ``alerts`` job.

For each rule and its current value:
1. The rule holds and no alert is open: open one as PENDING (the partial
   unique constraint settles a race to open it).
2. It holds and the pending alert has held for ``duration_seconds``: FIRING,
   and notify "trigger".  A snoozed alert whose snooze ended fires again.
3. It no longer holds: a PENDING alert is closed as "cleared" without any
   notification; a fired one is RESOLVED and notified "resolve".
4. Its rule was disabled by staff: its open alert closes as in 3.
No value (no fresh sample) changes nothing.  A per-subject rule (one value per
scheduled job) runs these steps for each subject; a subject that is gone (its
schedule switched off) closes its alert as in 3.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring.alerting.notifications.dispatch import notify_alert
from monitoring.alerting.state import open_alert, record_event, transition
from monitoring.alerting.values import current_value, subject_values
from monitoring.models import Alert, AlertRule

S = Alert.State


def evaluate_rules(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule once; returns how many rules ended in each outcome."""
    now = now or timezone.now()
    outcomes: Counter[str] = Counter()
    for rule in AlertRule.objects.filter(enabled=True).order_by("id"):
        per_subject = subject_values(rule.metric, now=now)
        if per_subject is not None:
            outcomes.update(_evaluate_subjects(rule=rule, values=per_subject, now=now))
            continue
        value = current_value(rule.metric, now=now)
        if value is None:
            outcomes["no_data"] += 1
            continue
        outcomes[evaluate_rule(rule=rule, value=value, now=now)] += 1
    for alert in Alert.objects.filter(rule__enabled=False, state__in=Alert.OPEN_STATES):
        outcomes[_close(alert=alert, now=now, note="rule disabled")] += 1
    return dict(outcomes)


def _evaluate_subjects(*, rule: AlertRule, values: dict[str, float], now: dt.datetime) -> list[str]:
    outcomes = [evaluate_rule(rule=rule, value=value, now=now, subject=subject) for subject, value in values.items()]
    gone = Alert.objects.filter(rule=rule, state__in=Alert.OPEN_STATES).exclude(subject__in=list(values))
    return outcomes + [_close(alert=alert, now=now, note="no longer expected") for alert in gone]


def evaluate_rule(*, rule: AlertRule, value: float, now: dt.datetime, subject: str = "") -> str:
    with transaction.atomic():
        if rule.holds(value):
            return _holds(rule=rule, subject=subject, value=value, now=now)
        return _clears(rule=rule, subject=subject, value=value, now=now)


def _holds(*, rule: AlertRule, subject: str, value: float, now: dt.datetime) -> str:
    alert = open_alert(rule_id=rule.pk, subject=subject) or _open(rule=rule, subject=subject, value=value, now=now)
    Alert.objects.filter(pk=alert.pk).update(value=value, last_evaluated_at=now, message=_message(rule, value))
    held_for = (now - alert.pending_since).total_seconds()
    if alert.state == S.PENDING and held_for >= rule.duration_seconds:
        if transition(alert=alert, old=S.PENDING, new=S.FIRING, fired_at=now):
            return _fired(alert=alert, now=now, note=f"held {held_for:.0f}s")
    if alert.state == S.SNOOZED and alert.snoozed_until is not None and alert.snoozed_until <= now:
        if transition(alert=alert, old=S.SNOOZED, new=S.FIRING, snoozed_until=None):
            return _fired(alert=alert, now=now, note="snooze ended and the condition still holds")
    return "pending" if alert.state == S.PENDING else "holding"


def _open(*, rule: AlertRule, subject: str, value: float, now: dt.datetime) -> Alert:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule,
                subject=subject,
                severity=rule.severity,
                value=value,
                message=_message(rule, value),
                pending_since=now,
                last_evaluated_at=now,
            )
    except IntegrityError:  # another evaluator opened it first
        opened = open_alert(rule_id=rule.pk, subject=subject)
        if opened is None:  # and it was resolved in between: the next pass opens a new one
            raise
        return opened
    record_event(alert=alert, kind="pending", at=now, note=alert.message)
    return alert


def _fired(*, alert: Alert, now: dt.datetime, note: str) -> str:
    record_event(alert=alert, kind="fired", at=now, note=note)
    notify_alert(alert_id=alert.pk, event="trigger")
    return "fired"


def _clears(*, rule: AlertRule, subject: str, value: float, now: dt.datetime) -> str:
    alert = open_alert(rule_id=rule.pk, subject=subject)
    if alert is None:
        return "ok"
    return _close(alert=alert, now=now, note=f"condition cleared at {value:g}", value=value)


def _close(*, alert: Alert, now: dt.datetime, note: str, value: float | None = None) -> str:
    """Pending: closed as "cleared", nobody was told.  Fired: resolved, and notified."""
    closed = {"resolved_at": now, "last_evaluated_at": now} | ({"value": value} if value is not None else {})
    with transaction.atomic():
        if alert.state == S.PENDING:
            if transition(alert=alert, old=S.PENDING, new=S.RESOLVED, **closed):
                record_event(alert=alert, kind="cleared", at=now, note=f"{note} before firing")
                return "cleared"
            return "ok"
        if transition(alert=alert, old=alert.state, new=S.RESOLVED, **closed):
            record_event(alert=alert, kind="resolved", at=now, note=note)
            notify_alert(alert_id=alert.pk, event="resolve")
            return "resolved"
    return "ok"


def _message(rule: AlertRule, value: float) -> str:
    return f"{rule.summary}: current value {value:g} ({rule.get_comparison_display()} {rule.threshold:g})"
