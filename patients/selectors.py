"""Reads of the clinical record, always through the caller's facility scope."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from patients.models import ClinicianFacility, Facility, Observation, Patient


def facility_ids_for(user) -> list[int] | None:
    """The facilities a user may see; ``None`` means all of them (superusers only)."""
    if not user.is_authenticated:
        return []
    if user.is_superuser:
        return None
    cached = getattr(user, "_iit_facility_ids", None)
    if cached is None:
        cached = list(ClinicianFacility.objects.filter(user=user).values_list("facility_id", flat=True))
        user._iit_facility_ids = cached
    return cached


def facilities_visible_to(user) -> QuerySet[Facility]:
    ids = facility_ids_for(user)
    qs = Facility.objects.all()
    return qs if ids is None else qs.filter(id__in=ids)


def patients_visible_to(user) -> QuerySet[Patient]:
    ids = facility_ids_for(user)
    qs = Patient.objects.select_related("facility")
    return qs if ids is None else qs.filter(facility_id__in=ids)


def patient_for(user, patient_id) -> Patient:
    """The patient if the user may see them; another facility's patient is a plain 404 (no existence leak)."""
    try:
        return patients_visible_to(user).get(pk=int(patient_id))
    except (Patient.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def observations_of(patient: Patient) -> QuerySet[Observation]:
    return Observation.objects.filter(patient=patient).order_by("observed_at", "id")
