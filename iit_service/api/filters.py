"""The query parameters of every list endpoint: a django-filter FilterSet per list, one backend for all.

- A parameter the list does not take is a 400 naming it: a misspelt filter must never answer the whole list.
- A filter value that names nothing (an unknown facility code, an identifier no one has) is an empty list;
  a value not of the filter's kind (``status=bogus``, a date that is not one) is a 400 naming the parameter.
- ``ordering`` takes the fields the list's FilterSet names (``-`` first for descending, several separated
  by commas; rows without a value last); any other is a 400. Without it a list keeps its own documented order.
- ``page``, ``page_size`` (iit_service.api.pagination) and ``format`` are taken by every list.
"""

from __future__ import annotations

from django.db.models import F
from django.db.models.expressions import OrderBy
from django_filters import OrderingFilter
from django_filters.constants import EMPTY_VALUES
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

# Taken by every list: DRF's format override (an unknown format is a 406) and the pagination's two.
COMMON_PARAMETERS = frozenset({"format", "page", "page_size"})


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, refusing any query parameter the list does not take."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        known = COMMON_PARAMETERS | set(filterset_class.base_filters if filterset_class else ())
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            message = f"Unknown query parameter; this list takes: {', '.join(sorted(known))}."
            raise ValidationError({name: [message] for name in unknown})
        return super().filter_queryset(request, queryset, view)


class Ordering(OrderingFilter):
    """``ordering``; rows without a value come last either way, on every database (PostgreSQL would put them
    first when descending, SQLite last), and the primary key breaks ties, so rows never move between pages."""

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return qs.order_by(*(_missing_last(self.get_ordering_value(param)) for param in value), "pk")


def _missing_last(name: str) -> OrderBy:
    field = F(name.removeprefix("-"))
    return field.desc(nulls_last=True) if name.startswith("-") else field.asc(nulls_last=True)
