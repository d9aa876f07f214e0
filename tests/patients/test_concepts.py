"""The controlled vocabulary: each concept's values are typed and range-checked."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patients.concepts import CONCEPTS

VALID = [
    ("visit", "scheduled", "scheduled"),
    ("visit", "unscheduled", "unscheduled"),
    ("next_appointment", "2024-02-29", dt.date(2024, 2, 29)),
    ("arv_days_supplied", 1, 1),
    ("arv_days_supplied", 365, 365),
    ("arv_days_supplied", 90.0, 90),
    ("arv_regimen", " TDF/3TC/DTG ", "TDF/3TC/DTG"),
    ("viral_load", 0, 0.0),
    ("viral_load", 1_250_000, 1_250_000.0),
    ("cd4", 0, 0.0),
    ("who_stage", 1, 1),
    ("who_stage", 4, 4),
    ("adherence", "fair", "fair"),
    ("pregnant", True, True),
    ("breastfeeding", False, False),
    ("tb_screen", "negative", "negative"),
    ("weight", 0.5, 0.5),
    ("weight", 300, 300.0),
]

INVALID = [
    ("visit", "Scheduled"),
    ("visit", None),
    ("next_appointment", "2023-02-29"),
    ("next_appointment", "01/02/2024"),
    ("next_appointment", 20240201),
    ("arv_days_supplied", 0),
    ("arv_days_supplied", 366),
    ("arv_days_supplied", 30.5),
    ("arv_days_supplied", "30"),
    ("arv_regimen", ""),
    ("arv_regimen", "x" * 201),
    ("arv_regimen", 5),
    ("arv_regimen", "TDF\x00"),
    ("viral_load", -1),
    ("viral_load", float("nan")),
    ("viral_load", float("inf")),
    ("cd4", -0.1),
    ("who_stage", 0),
    ("who_stage", 5),
    ("who_stage", True),
    ("adherence", "excellent"),
    ("pregnant", "true"),
    ("pregnant", 1),
    ("breastfeeding", None),
    ("tb_screen", "pos"),
    ("weight", 0.4),
    ("weight", 300.1),
    ("weight", "60"),
]


@pytest.mark.parametrize(("concept", "raw", "clean"), VALID)
def test_it_accepts_and_types_valid_values(concept, raw, clean):
    value = CONCEPTS[concept].clean(raw)
    assert value == clean
    assert type(value) is type(clean)


@pytest.mark.parametrize(("concept", "raw"), INVALID)
def test_it_refuses_invalid_values_with_a_reason(concept, raw):
    with pytest.raises(ValueError, match=concept):
        CONCEPTS[concept].clean(raw)


def test_the_vocabulary_covers_the_issues_concepts():
    assert set(CONCEPTS) == {
        "visit", "next_appointment", "arv_days_supplied", "arv_regimen", "viral_load", "cd4",
        "who_stage", "adherence", "pregnant", "breastfeeding", "tb_screen", "weight",
    }  # fmt: skip


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(concept=st.sampled_from(sorted(CONCEPTS)), value=JSON_VALUES)
def test_any_json_value_is_either_cleaned_to_the_concepts_type_or_refused(concept, value):
    try:
        cleaned = CONCEPTS[concept].clean(value)
    except ValueError:
        return
    kind = CONCEPTS[concept].kind
    expected = {"numeric": (int, float), "coded": str, "text": str, "date": dt.date, "boolean": bool}[kind]
    assert isinstance(cleaned, expected)


@pytest.mark.parametrize("concept", ["weight", "viral_load", "cd4", "arv_days_supplied", "who_stage"])
def test_a_number_too_large_for_a_float_is_refused(concept):
    with pytest.raises(ValueError):
        CONCEPTS[concept].clean(10**400)
