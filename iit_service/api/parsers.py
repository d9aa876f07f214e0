"""A JSON parser that enforces DATA_UPLOAD_MAX_MEMORY_SIZE.

DRF's own JSONParser reads the request stream directly, so Django's body-size
limit (which guards ``request.body``) never fires and a huge body is parsed in
full.  This parser reads at most the limit plus one byte and answers 413 past it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]  # not in the 3.16 stubs
from rest_framework.utils import json


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            raise RequestDataTooBig("Request body is too large.")
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig("Request body is too large.")
        try:
            return json.loads(raw.decode(get_encoding(parser_context)), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
