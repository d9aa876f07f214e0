"""The base of the clinical API's views."""

from __future__ import annotations

from functools import cached_property

from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from iit_service.api.caller import caller_of
from iit_service.api.parsers import LimitedJSONParser
from iit_service.caller import Caller


class ClinicalViewSet(GenericViewSet):
    """Shared by the clinical endpoints: JSON bodies only, size-limited (413 past DATA_UPLOAD_MAX_MEMORY_SIZE).

    Views validate input, call one service or selector with ``self.caller`` (or the user), and render;
    a service's refusal (``iit_service.errors``) becomes the error response in ``iit_service.api.errors``.
    """

    parser_classes = [LimitedJSONParser]

    @cached_property
    def caller(self) -> Caller:
        return caller_of(self.request)

    def page_of(self, rows) -> list:
        """The requested page of ``rows`` (every clinical list is paginated).

        A list filters and orders its rows first with ``filter_queryset`` (its ``filterset_class``: query
        parameters in iit_service.api.filters)."""
        page = self.paginate_queryset(rows)
        assert page is not None  # DEFAULT_PAGINATION_CLASS is set for the whole API
        return page

    def paginated(self, rows, output_class) -> Response:
        return self.get_paginated_response(output_class(rows, many=True).data)
