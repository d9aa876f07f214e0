"""Reads of the clinical record, always through the caller's facility scope."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet

from iit_service.errors import NotFound
from patients.models import CARE_STATE_CHOICES, ClinicianFacility, Facility, Observation, Patient, care_state_q


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


def patient_visible_to(user, patient_id) -> Patient:
    """The patient (with their facility) if the user may see them; another facility's is NotFound, no leak."""
    if not user.is_authenticated:
        raise NotFound
    patients = Patient.objects.select_related("facility")
    if not user.is_superuser:  # the membership as a join: one query
        patients = patients.filter(facility__memberships__user=user)
    try:
        return patients.get(pk=patient_id)
    except (Patient.DoesNotExist, ValueError, TypeError):  # not an integer: no such patient either
        raise NotFound from None


def facility_for(user, lookup: str) -> Facility:
    """One of the user's facilities by id or by code; anything else is NotFound."""
    facility = facilities_visible_to(user).filter(facility_match(lookup)).first()
    if facility is None:
        raise NotFound
    return facility


def facility_match(lookup: str) -> Q:
    """The facility a lookup names, by code or (when it is a bigint) by id; a lookup no row can hold matches none."""
    if "\x00" in lookup:  # PostgreSQL refuses NUL in text: nothing can match it
        return Q(pk__in=[])
    by_id = lookup.isascii() and lookup.isdigit() and int(lookup) < 2**63
    return Q(code=lookup) | Q(pk=int(lookup)) if by_id else Q(code=lookup)


def observations_of(patient: Patient) -> QuerySet[Observation]:
    """A patient's observations in time order (the obs_patient_time index)."""
    return Observation.objects.filter(patient=patient).order_by("observed_at", "id")


def care_state_counts(*, patients: QuerySet[Patient], today: dt.date) -> dict[str, int]:
    """How many of ``patients`` are in each care state on ``today``, in one query."""
    counts = {state: Count("pk", filter=care_state_q(state, today=today)) for state, _ in CARE_STATE_CHOICES}
    return patients.aggregate(**counts)
