"""The controlled vocabulary of observations.

Shaped after OpenMRS obs: each concept fixes the type of its value and the
range a value may take.  Anything outside this table is refused at ingest.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

NUMERIC, CODED, DATE, TEXT, BOOLEAN = "numeric", "coded", "date", "text", "boolean"


@dataclass(frozen=True)
class Concept:
    code: str
    label: str
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""

    def clean(self, value):
        """Return the value in its stored Python type, or raise ValueError with a clinician-readable reason."""
        cleaner = _CLEANERS[self.kind]
        return cleaner(self, value)


def _clean_numeric(concept: Concept, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{concept.code} takes a number")
    try:
        number = float(value)  # JSON integers are unbounded; a float column is not
    except OverflowError:
        raise ValueError(f"{concept.code} takes a finite number") from None
    if not math.isfinite(number):
        raise ValueError(f"{concept.code} takes a finite number")
    if concept.integer and not number.is_integer():
        raise ValueError(f"{concept.code} takes a whole number")
    if concept.minimum is not None and number < concept.minimum:
        raise ValueError(f"{concept.code} must be at least {concept.minimum:g}")
    if concept.maximum is not None and number > concept.maximum:
        raise ValueError(f"{concept.code} must be at most {concept.maximum:g}")
    return int(number) if concept.integer else number


def _clean_coded(concept: Concept, value):
    if value not in concept.choices:
        raise ValueError(f"{concept.code} must be one of: {', '.join(concept.choices)}")
    return value


def _clean_date(concept: Concept, value):
    if not isinstance(value, str):
        raise ValueError(f"{concept.code} takes an ISO date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{concept.code} takes an ISO date (YYYY-MM-DD)") from None


def _clean_text(concept: Concept, value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{concept.code} takes non-empty text")
    if len(value) > 200:
        raise ValueError(f"{concept.code} is at most 200 characters")
    if "\x00" in value:
        raise ValueError(f"{concept.code} cannot contain NUL characters")
    return value.strip()


def _clean_boolean(concept: Concept, value):
    if not isinstance(value, bool):
        raise ValueError(f"{concept.code} takes true or false")
    return value


_CLEANERS = {
    NUMERIC: _clean_numeric,
    CODED: _clean_coded,
    DATE: _clean_date,
    TEXT: _clean_text,
    BOOLEAN: _clean_boolean,
}

VISIT = "visit"
NEXT_APPOINTMENT = "next_appointment"
ARV_DAYS_SUPPLIED = "arv_days_supplied"
ARV_REGIMEN = "arv_regimen"
VIRAL_LOAD = "viral_load"
CD4 = "cd4"
WHO_STAGE = "who_stage"
ADHERENCE = "adherence"
PREGNANT = "pregnant"
BREASTFEEDING = "breastfeeding"
TB_SCREEN = "tb_screen"
WEIGHT = "weight"

VIRAL_LOAD_MAX = 1e8
CD4_MAX = 5000

CONCEPTS: dict[str, Concept] = {
    c.code: c
    for c in (
        Concept(VISIT, "Clinical visit", CODED, choices=("scheduled", "unscheduled")),
        Concept(NEXT_APPOINTMENT, "Next appointment date", DATE),
        Concept(ARV_DAYS_SUPPLIED, "ARV dispense: days supplied", NUMERIC, 1, 365, integer=True, unit="days"),
        Concept(ARV_REGIMEN, "ARV dispense: regimen", TEXT),
        # Upper bounds: past any measured value (VL peaks near 1e7 copies/mL; CD4 rarely tops 2000),
        # so a larger number is a unit or typing error rather than a result.
        Concept(VIRAL_LOAD, "HIV viral load", NUMERIC, 0, VIRAL_LOAD_MAX, unit="copies/mL"),
        Concept(CD4, "CD4 count", NUMERIC, 0, CD4_MAX, unit="cells/µL"),
        Concept(WHO_STAGE, "WHO clinical stage", NUMERIC, 1, 4, integer=True),
        Concept(ADHERENCE, "Adherence assessment", CODED, choices=("good", "fair", "poor")),
        Concept(PREGNANT, "Pregnant", BOOLEAN),
        Concept(BREASTFEEDING, "Breastfeeding", BOOLEAN),
        Concept(TB_SCREEN, "TB screening result", CODED, choices=("positive", "negative")),
        Concept(WEIGHT, "Weight", NUMERIC, 0.5, 300, unit="kg"),
    )
}

CONCEPT_CHOICES = [(c.code, c.label) for c in CONCEPTS.values()]

# A next appointment is booked at a visit for a later day; past a year (366 days, a leap year's) it is
# a typing error (9999-12-31, a wrong year), and a wrong date would drive days_to_next_appointment.
NEXT_APPOINTMENT_MAX_AHEAD = dt.timedelta(days=366)


def clean_observation(code: str, value, *, observed_on: dt.date):
    """The value in its stored type, checked against its concept and the day it was recorded.

    Raises ValueError with a clinician-readable reason.
    """
    cleaned = CONCEPTS[code].clean(value)
    if code == NEXT_APPOINTMENT:
        if cleaned <= observed_on:
            raise ValueError(f"{code} must be after the visit ({observed_on.isoformat()})")
        if cleaned > observed_on + NEXT_APPOINTMENT_MAX_AHEAD:
            raise ValueError(f"{code} must be at most a year after the visit ({observed_on.isoformat()})")
    return cleaned
