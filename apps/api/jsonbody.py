"""Reading JSON request bodies of the API routes, with the same limits as stream bodies."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from apps.streams.payloads import split_json
from streamdash.core.content import is_json_type
from streamdash.core.errors import BadRequest, InvalidJson, TooLarge, UnsupportedMediaType


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    if not is_json_type(request.content_type or ""):
        raise UnsupportedMediaType("Send the body as application/json.")
    body = request.body
    if len(body) > settings.STREAMDASH_MAX_REQUEST_BYTES:
        raise TooLarge(
            "The request body is too large.", limit=settings.STREAMDASH_MAX_REQUEST_BYTES
        )
    if not body.strip():
        return {}
    if body.lstrip()[:1] != b"{":
        raise BadRequest("The body must be a JSON object.")
    (raw,) = split_json(body)  # validates UTF-8, syntax, nesting depth, no NaN/Infinity
    try:
        value = json.loads(raw)
    except ValueError:  # valid JSON that Python cannot hold: an integer of 4300+ digits
        raise InvalidJson(
            "The body holds an integer of more than 4300 digits; send it as a string."
        ) from None
    if not isinstance(value, dict):
        raise InvalidJson("The body must be a JSON object.")
    return value
