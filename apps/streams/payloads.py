"""Turning a request body into chunks, before anything touches the database.

JSON streams: one JSON value is one chunk, and a top-level array is flattened one level (so an
array chunk is sent as ``[[...]]``). Each chunk keeps the exact bytes the writer sent for that
value: elements are cut out of the body with ``raw_decode`` instead of being re-serialised, so
numbers such as ``1e400`` or ``0.10`` survive unchanged. The decoder only validates: numbers
are never converted (Python refuses integers of more than 4300 digits, valid JSON all the same),
and ``NaN``/``Infinity``, which Python's decoder accepts but JSON does not (RFC 8259), are
refused, since every reader's ``JSON.parse`` would fail on the stream. This runs on every
append, so the body is parsed once, by the C decoder, and the depth limit is checked on the text.

A compact array (no blanks, as the SDK and ``JSON.stringify`` send it) is split by orjson first
and kept only when its elements serialise back to the body byte for byte (``_split_compact``):
the scanner built a Python object for every element only to drop it, 13.7% of the server's
GIL samples (py-spy) during ``streambench append``. 100 chunks of 64 B, best of 15 on this
machine in one sitting: compact 155 -> 40 us, spaced (``json.dumps``' default) 154 -> 156 us.
``split_json``'s share of the server's GIL samples (py-spy --gil, ``streambench append
--batches 1500 --no-reference``, compact rows): 11.9% before, 5.6% after. The end-to-end CPU
per request did not separate from the noise of that sitting (load average 3-7, other sessions'
CI runs): main and this side by side at the same time, 2.28 / 2.29 and 2.18 / 2.17 ms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import orjson
from django.conf import settings

from streamdash.core.content import is_json_type
from streamdash.core.errors import EmptyBody, InvalidJson, TooLarge, TooManyChunks


def _not_json(constant: str) -> None:
    raise InvalidJson(
        f"The body is not valid JSON: {constant} is not JSON (RFC 8259); send a number, null "
        "or a string instead.",
        value=constant,
    )


# ``str`` keeps a number's text as it is: validated by the scanner, never converted.
_DECODER = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=_not_json)
_WS = re.compile(r"[ \t\n\r]*")
# The C scanner behind ``raw_decode``, called without its wrapper (a frame per chunk).
_SCAN: Callable[[str, int], tuple[object, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_BLANK = frozenset(" \t\n\r")
# A JSON string in "unrolled loop" form, its closing quote optional: every match runs to the
# string's end (or the text's end), so the scan below is linear even on an unterminated string.
# The former ``"(?:[^"\\]|\\.)*"`` failed and restarted at every quote of an unterminated
# string: quadratic, 4.5 s of CPU for a 20 KB body of ``\"`` pairs.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]  # always matches


def _decode_one(text: str, pos: int) -> int:
    """Validate the JSON value at ``pos``; return where it ends."""
    try:
        return _DECODER.raw_decode(text, pos)[1]
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> InvalidJson:
    limit = settings.STREAMDASH_MAX_JSON_DEPTH
    return InvalidJson(f"The JSON body is nested deeper than {limit} levels.", max_depth=limit)


def _check_depth(text: str) -> None:
    """Reject nesting deeper than the limit before parsing (so deep input never recurses).

    Works on the text in one linear pass: strings skipped whole, brackets counted. A body with
    fewer opening brackets than the limit cannot be too deep, which skips the scan."""
    limit = settings.STREAMDASH_MAX_JSON_DEPTH
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for token in _STRING_OR_BRACKET.findall(text):
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                raise _too_deep()
        elif token in ("]", "}"):
            depth -= 1


def _too_many(limit: int) -> TooManyChunks:
    return TooManyChunks(
        f"The request holds more than {limit} chunks (JSON array elements); one request may "
        f"append at most {limit} chunks. Split it into several appends.",
        limit=limit,
    )


def _split_array(text: str, pos: int, max_chunks: int | None) -> list[bytes] | None:
    """The elements of the array at ``pos``, as ``split_json``'s loop below cuts them, or None
    for anything that loop must answer itself (every error, an empty array, too many chunks,
    an element with enough brackets to be too deep): its answer, errors included, stays the
    one the tests pin down. On a valid body the two agree, since this is the same scanner at the
    same positions; what this skips is the depth scan of the whole text (a regular expression
    over every string: half of a 100-chunk split), made unnecessary when no element holds as
    many brackets as the limit (an element's brackets bound its depth, strings included)."""
    limit = settings.STREAMDASH_MAX_JSON_DEPTH
    shallow = text.count("[") + text.count("{") <= limit
    scan, size = _SCAN, len(text)
    chunks: list[bytes] = []
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return None
    try:
        while True:
            if max_chunks is not None and len(chunks) == max_chunks:
                return None
            end = scan(text, pos)[1]
            piece = text[pos:end]
            if not shallow and piece.count("[") + piece.count("{") >= limit:
                return None
            chunks.append(piece.encode("utf-8"))
            after = text[end : end + 1]
            if after in _BLANK:
                end = _past_blanks(text, end)
                after = text[end : end + 1]
            if after == ",":
                pos = end + 1
                if text[pos : pos + 1] in _BLANK:
                    pos = _past_blanks(text, pos)
            elif after == "]":
                break
            else:
                return None
    except (StopIteration, ValueError, RecursionError, InvalidJson):
        return None
    return chunks if _skip_ws(text, end + 1) == size else None


def _past_blanks(text: str, pos: int) -> int:
    """``_skip_ws`` from a blank, for the usual case of one (``", "`` between elements) without
    the regular expression."""
    if text[pos + 1 : pos + 2] not in _BLANK:
        return pos + 1
    return _skip_ws(text, pos)


# How much of a body's head shows whether it was sent spaced, as Python's ``json.dumps``
# writes by default: such a body cannot round-trip, so it goes straight to the scanner instead
# of paying for a failed ``_split_compact`` first (orjson's parse alone is 20 us of 100 chunks).
# The marks are blanks after a string (``", "``, ``": "``), which a compact body holds only
# after an escaped quote, and a blank after the opening bracket; ``", "`` alone would send
# compact prose ("a, b") to the scanner.
_HEAD = 256
_SPACED = (b'": ', b'", "')


def _split_compact(body: bytes, max_chunks: int | None) -> list[bytes] | None:
    """The elements of a compact array body (no blanks, as the SDK and ``JSON.stringify`` send
    it) as orjson parses and re-serialises them, or None for anything else, which the scanner
    below then answers, errors included. Taken only when the elements serialise back to the
    body byte for byte, so each chunk is still the writer's exact bytes: a number orjson would
    change (``1e400``, ``0.10``, integers beyond 64 bits), an escape it would write otherwise
    (``\\u00e9``, ``\\/``), a duplicate key or a blank anywhere breaks the match. What the
    scanner would refuse is never taken either: orjson refuses ``NaN``, invalid UTF-8 and
    lone surrogates; an empty array and more elements than ``max_chunks`` are left to the
    scanner (n elements take 2n + 1 bytes and n - 1 commas, so a body of a million ``0,`` is
    never parsed here), and so is a long element with as many brackets as the depth limit (the
    rule of ``_split_array``; an element nested ``limit`` deep holds ``limit`` pairs of
    brackets, so a shorter one cannot be too deep, and the count is skipped)."""
    if max_chunks is not None and len(body) > 2 * max_chunks and body.count(b",") >= max_chunks:
        return None
    head = body[:_HEAD]
    if head[1:2].isspace() or _SPACED[0] in head or _SPACED[1] in head:
        return None
    try:
        items = orjson.loads(body)
        if not items:
            return None
        parts = list(map(orjson.dumps, items))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    if b"[" + b",".join(parts) + b"]" != body:
        return None
    limit = settings.STREAMDASH_MAX_JSON_DEPTH
    if max(map(len, parts)) >= 2 * limit and any(
        part.count(b"[") + part.count(b"{") >= limit for part in parts if len(part) >= 2 * limit
    ):
        return None
    return parts


def split_json(
    body: bytes, *, allow_empty_array: bool = False, max_chunks: int | None = None
) -> list[bytes]:
    """Chunks of a JSON body: the elements of a top-level array, or the one value. A compact
    array is split by orjson; anything else is validated and cut out in one pass of the C
    decoder, which stops past ``max_chunks``."""
    if body[:1] == b"[":
        compact = _split_compact(body, max_chunks)
        if compact is not None:
            return compact
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("The JSON body is not valid UTF-8.") from None
    pos = _skip_ws(text, 0)
    if pos == len(text):
        raise InvalidJson("The body is empty; a JSON stream needs a JSON value.")
    if text[pos] == "[":
        fast = _split_array(text, pos, max_chunks)
        if fast is not None:
            return fast
    _check_depth(text)
    if text[pos] != "[":
        end = _decode_one(text, pos)
        if _skip_ws(text, end) != len(text):
            raise InvalidJson("The body holds more than one JSON value; send an array instead.")
        return [text[pos:end].encode("utf-8")]
    chunks: list[bytes] = []
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        if _skip_ws(text, pos + 1) != len(text):
            raise InvalidJson("Unexpected data after the JSON array.")
        if allow_empty_array:
            return []
        raise EmptyBody("An empty JSON array appends nothing; send at least one value.")
    while True:
        if max_chunks is not None and len(chunks) == max_chunks:
            raise _too_many(max_chunks)
        end = _decode_one(text, pos)
        chunks.append(text[pos:end].encode("utf-8"))
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif text.startswith("]", pos):
            break
        else:
            raise InvalidJson(f"The JSON array is not valid: expected ',' or ']' at {pos}.")
    if _skip_ws(text, pos + 1) != len(text):
        raise InvalidJson("Unexpected data after the JSON array.")
    return chunks


def split_body(content_type: str, body: bytes, *, allow_empty_array: bool = False) -> list[bytes]:
    """The chunks a request body appends, validated against the size limits and the number of
    chunks per request: every chunk is a row, and a 2 MB body of ``0,`` is a million rows
    inserted under the write lock, while the rate limit counts requests."""
    if len(body) > settings.STREAMDASH_MAX_REQUEST_BYTES:
        raise TooLarge(
            f"The request body is {len(body)} bytes; the limit is "
            f"{settings.STREAMDASH_MAX_REQUEST_BYTES} bytes. Split it into several appends.",
            limit=settings.STREAMDASH_MAX_REQUEST_BYTES,
        )
    chunks = (
        split_json(
            body,
            allow_empty_array=allow_empty_array,
            max_chunks=settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST,
        )
        if is_json_type(content_type)
        else [body]
    )
    limit = settings.STREAMDASH_MAX_CHUNK_BYTES
    if chunks and max(map(len, chunks)) > limit:
        position = next(i for i, chunk in enumerate(chunks) if len(chunk) > limit)
        raise TooLarge(
            f"Chunk {position} of the request is {len(chunks[position])} bytes; one chunk may "
            f"be at most {limit} bytes.",
            limit=limit,
            chunk=position,
        )
    return chunks


def json_array(chunks: list[bytes]) -> bytes:
    """The GET body of a JSON stream: its chunks as one JSON array, built with one copy of the
    chunks. ``b"[" + b",".join(…) + b"]"`` made three: 30% of the server's samples (py-spy)
    while it served 4 MiB pages of 500 KB chunks, about 28 ms a page on this shared machine,
    most of it page faults on the fresh 4 MiB buffers."""
    if not chunks:
        return b"[]"
    parts = [b","] * (2 * len(chunks) + 1)
    parts[0], parts[-1] = b"[", b"]"
    parts[1::2] = chunks
    return b"".join(parts)


def read_body(content_type: str, chunks: list[bytes]) -> bytes:
    """The body of a read: a JSON array for JSON streams, the bytes joined for the others."""
    return json_array(chunks) if is_json_type(content_type) else b"".join(chunks)
