"""POST JSON with a timeout; any non-2xx answer or network error is a DeliveryError."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.conf import settings


class DeliveryError(Exception):
    def __init__(self, message: str, *, response_code: int | None = None) -> None:
        super().__init__(message)
        self.response_code = response_code


def post_json(url: str, payload: dict) -> int:
    if not url.startswith(("http://", "https://")):
        raise DeliveryError(f"refusing a non-HTTP URL: {url[:40]}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "iit-ml-service"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.NOTIFY_HTTP_TIMEOUT) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace")
        raise DeliveryError(f"HTTP {exc.code}: {detail}", response_code=exc.code) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
