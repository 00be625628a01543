"""The API's JSON parser: bounded in size and in nesting depth.

DRF's JSONParser reads any body through the WSGI stream (Django's
DATA_UPLOAD_MAX_MEMORY_SIZE only guards `request.body` and forms) and lets Python's
`json` recurse until it hits the interpreter's recursion limit: a 3 MB body of `[[[[...`
was a RecursionError, a 500. Here a body over the limit is a 413 and JSON nested deeper
than `MAX_JSON_DEPTH` is a 400 parse error, before any serializer sees it.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

# No request of the API needs more than a handful of levels (metadata values are flat
# strings, tiers are a list of objects); 32 leaves room without letting recursion in.
MAX_JSON_DEPTH = 32


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"

    def __init__(self) -> None:
        super().__init__(detail=_("The request body is larger than this server accepts."), code="request_too_large")


def max_body_size() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests lists/objects deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = max_body_size()
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(_("JSON parse error: nested too deeply.")) from None
        except UnicodeDecodeError:
            message = _("The body is not valid %(encoding)s text.") % {"encoding": encoding}
            raise exceptions.ParseError(message) from None
        except NotJsonConstant:
            raise exceptions.ParseError(_("JSON parse error: NaN and Infinity are not JSON numbers.")) from None
        except json.JSONDecodeError as error:
            # The decoder's own sentence is Python's, in English: say where, in the caller's language.
            where = {"line": error.lineno, "column": error.colno}
            raise exceptions.ParseError(_("JSON parse error at line %(line)s, column %(column)s.") % where) from None
        except ValueError:
            # e.g. an integer longer than Python converts (its message names Python's limit)
            raise exceptions.ParseError(_("JSON parse error: a value cannot be read as JSON.")) from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(
                _("JSON parse error: nested deeper than %(limit)s levels.") % {"limit": MAX_JSON_DEPTH}
            )
        return data


class NotJsonConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (DRF's own parser refuses them too when strict).
    raise NotJsonConstant(name)
