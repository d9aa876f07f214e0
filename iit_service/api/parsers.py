"""A JSON parser that enforces DATA_UPLOAD_MAX_MEMORY_SIZE, a nesting depth and valid Unicode.

DRF's own JSONParser reads the request stream directly, so Django's body-size
limit (which guards ``request.body``) never fires and a huge body is parsed in
full.  This parser reads at most the limit plus one byte and answers 413 past it.

Python's json module accepts what the service cannot use and answers those with a 400 here, never
a 500 later: nesting deep enough to exhaust the interpreter's recursion (a RecursionError), and
lone UTF-16 surrogates such as ``"A\\ud800B"``, which no database column can store.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]  # not in the 3.16 stubs
from rest_framework.utils import json

# Deeper than any body the API takes (a bulk upload is three levels); far below the recursion limit.
MAX_DEPTH = 32
# A \uD800-\uDFFF escape: half of a surrogate pair, or a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
            text = raw.decode(get_encoding(parser_context))
            data = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels") from None
        _check_depth(data)
        if _SURROGATE_ESCAPE.search(text):
            _check_unicode(data)
        return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(data) -> None:
    if isinstance(data, dict | list) and _deeper_than(data, MAX_DEPTH):
        raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")


def _deeper_than(container: dict | list, levels: int) -> bool:
    # Recursion is bounded by MAX_DEPTH, and only containers are visited: scalars cost one type check.
    if levels == 0:
        return True
    for child in container.values() if isinstance(container, dict) else container:
        if isinstance(child, dict | list) and _deeper_than(child, levels - 1):
            return True
    return False


def _check_unicode(data) -> None:
    # A surrogate pair decodes to one character; what is left in the surrogate range stands alone.
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("JSON parse error - a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
