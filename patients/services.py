"""Writes to the clinical record.  Every read or write of patient data is audited here."""

from __future__ import annotations

import logging

from patients.models import AuditEvent, Facility, Patient

security_log = logging.getLogger("iit.security")


def client_address(request) -> str | None:
    """The caller's address: the first X-Forwarded-For hop when a proxy set it, else the socket peer."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    address = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR")
    return address or None


def audit_record(
    *,
    request,
    action: str,
    resource: str,
    patient: Patient | None = None,
    facility: Facility | None = None,
    object_count: int = 1,
) -> AuditEvent:
    user = request.user if getattr(request, "user", None) and request.user.is_authenticated else None
    event = AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else "anonymous",
        action=action,
        resource=resource,
        patient=patient,
        facility=facility or (patient.facility if patient else None),
        object_count=object_count,
        client_address=client_address(request),
        request_id=getattr(request, "request_id", "")[:64],
        path=request.path[:300],
    )
    security_log.info(
        "patient data access",
        extra={
            "event": "patient_data_access",
            "action": action,
            "resource": resource,
            "user": event.username,
            "patient_id": patient.pk if patient else None,
            "facility": event.facility.code if event.facility else None,
            "object_count": object_count,
            "client_address": event.client_address,
        },
    )
    return event
