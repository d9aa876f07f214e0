"""The OpenAPI schema view, with errors in the one JSON error shape."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView

from iit_service.api.negotiation import JSONErrorsMixin


class SchemaView(JSONErrorsMixin, SpectacularAPIView):
    """The OpenAPI schema (YAML, or JSON with ``?format=json``)."""
