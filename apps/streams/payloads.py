"""Turning a request body into chunks, before anything touches the database.

JSON streams: one JSON value is one chunk, and a top-level array is flattened one level (so an
array chunk is sent as ``[[...]]``). Each chunk keeps the exact bytes the writer sent for that
value: elements are cut out of the body with ``raw_decode`` instead of being re-serialised, so
numbers such as ``1e400`` or ``0.10`` survive unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from apps.streams.errors import EmptyBody, InvalidJson, TooLarge

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def base_content_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(content_type: str) -> bool:
    return base_content_type(content_type) == "application/json"


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping once it passes ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _decode_one(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except RecursionError:
        raise InvalidJson(
            "The JSON body is nested too deeply.", max_depth=settings.STREAMDASH_MAX_JSON_DEPTH
        ) from None


def _check_depth(value: Any) -> None:
    limit = settings.STREAMDASH_MAX_JSON_DEPTH
    if _depth(value, limit) > limit:
        raise InvalidJson(f"The JSON body is nested deeper than {limit} levels.", max_depth=limit)


def split_json(body: bytes, *, allow_empty_array: bool = False) -> list[bytes]:
    """Chunks of a JSON body: the elements of a top-level array, or the one value."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("The JSON body is not valid UTF-8.") from None
    start = _skip_ws(text, 0)
    if start == len(text):
        raise InvalidJson("The body is empty; a JSON stream needs a JSON value.")
    if text[start] != "[":
        value, end = _decode_one(text, start)
        if _skip_ws(text, end) != len(text):
            raise InvalidJson("The body holds more than one JSON value; send an array instead.")
        _check_depth(value)
        return [text[start:end].encode("utf-8")]
    # Validate the whole array first (depth included), then cut each element out of it.
    whole, end = _decode_one(text, start)
    if _skip_ws(text, end) != len(text):
        raise InvalidJson("Unexpected data after the JSON array.")
    _check_depth(whole)
    if not whole:
        if allow_empty_array:
            return []
        raise EmptyBody("An empty JSON array appends nothing; send at least one value.")
    chunks: list[bytes] = []
    pos = start + 1
    for _ in whole:
        pos = _skip_ws(text, pos)
        _, elem_end = _DECODER.raw_decode(text, pos)
        chunks.append(text[pos:elem_end].encode("utf-8"))
        pos = _skip_ws(text, elem_end)
        if text[pos] == ",":
            pos += 1
    return chunks


def split_body(content_type: str, body: bytes, *, allow_empty_array: bool = False) -> list[bytes]:
    """The chunks a request body appends, validated against the size limits."""
    if len(body) > settings.STREAMDASH_MAX_REQUEST_BYTES:
        raise TooLarge(
            f"The request body is {len(body)} bytes; the limit is "
            f"{settings.STREAMDASH_MAX_REQUEST_BYTES} bytes. Split it into several appends.",
            limit=settings.STREAMDASH_MAX_REQUEST_BYTES,
        )
    chunks = (
        split_json(body, allow_empty_array=allow_empty_array)
        if is_json_type(content_type)
        else [body]
    )
    limit = settings.STREAMDASH_MAX_CHUNK_BYTES
    for position, chunk in enumerate(chunks):
        if len(chunk) > limit:
            raise TooLarge(
                f"Chunk {position} of the request is {len(chunk)} bytes; one chunk may be at "
                f"most {limit} bytes.",
                limit=limit,
                chunk=position,
            )
    return chunks


def json_array(chunks: list[bytes]) -> bytes:
    """The GET body of a JSON stream: its chunks as one JSON array."""
    return b"[" + b",".join(chunks) + b"]"
