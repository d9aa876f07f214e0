"""Retention of the security audit trail: AuditEvent rows older than AUDIT_LOG_RETENTION_DAYS (90).

Called by the scheduled ``retention`` job (monitoring.jobs).  Deletes in
batches by primary key so a large backlog never holds one long transaction or
locks the table against the audit writes of live requests.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from patients.models import AuditEvent


def audit_rows_purge(
    *, older_than_days: int | None = None, batch_size: int = 5000, now: dt.datetime | None = None
) -> int:
    """Delete audit rows older than ``older_than_days`` (default: the setting); return how many."""
    days = older_than_days if older_than_days is not None else settings.AUDIT_LOG_RETENTION_DAYS
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            AuditEvent.objects.filter(occurred_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += AuditEvent.objects.filter(id__in=ids).delete()[0]
