"""The one pagination of every list endpoint.

``page`` and ``page_size`` are positive whole numbers (anything else is a 400 naming the parameter);
``page_size`` past ``max_page_size`` is capped, and the ``next``/``previous`` links carry the size served.
A page past the last is a 404, as DRF answers it.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.utils.urls import replace_query_param


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        _positive(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request) -> int | None:
        size = _positive(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)

    def get_next_link(self) -> str | None:
        return self._with_served_size(super().get_next_link())

    def get_previous_link(self) -> str | None:
        return self._with_served_size(super().get_previous_link())

    def _with_served_size(self, link: str | None) -> str | None:
        # A link exists only after paginate_queryset, which set both.
        assert self.request is not None and self.page is not None
        if link is None or self.page_size_query_param not in self.request.query_params:
            return link
        return replace_query_param(link, self.page_size_query_param, self.page.paginator.per_page)


def _positive(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValidationError({name: ["A positive whole number."]})
    return int(raw)
