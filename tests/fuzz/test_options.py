"""OPTIONS on any API endpoint is a 405 in the one error shape (it was a 500: DRF's metadata
introspection needs a serializer_class, which these viewsets do not have). Found by schemathesis."""

from __future__ import annotations

from tests.security.test_anonymous_access import protected_paths


def test_options_on_every_api_endpoint_is_405_not_a_server_error(api):
    for path in protected_paths():
        if not path.startswith("/api/v1/"):
            continue
        response = api.options(path)
        assert response.status_code == 405, f"OPTIONS {path} answered {response.status_code}"
        assert response.json()["error"]["code"] == "method_not_allowed", path
