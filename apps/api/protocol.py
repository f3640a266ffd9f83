"""Durable Streams request parsing and response headers (PROTOCOL.md §1–3).

Everything here is pure: it reads request headers and query parameters, raises domain errors
for bad input, and builds the protocol's response headers. Views stay glue.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.http import QueryDict

from apps.api.exchange import StreamRequest, StreamResponse
from apps.streams.services import ProducerClaim, StreamConfig
from streamdash.core.errors import BadRequest
from streamdash.core.offsets import NOW, START, offset_for, parse_offset

NEXT_OFFSET = "Stream-Next-Offset"
UP_TO_DATE = "Stream-Up-To-Date"
CLOSED = "Stream-Closed"
CURSOR = "Stream-Cursor"
TTL = "Stream-TTL"
EXPIRES_AT = "Stream-Expires-At"
START_INDEX = "Stream-Start-Index"
NEXT_INDEX = "Stream-Next-Index"
SSE_ENCODING = "Stream-SSE-Data-Encoding"
FORKED_FROM = "Stream-Forked-From"
FORK_OFFSET = "Stream-Fork-Offset"
FORK_SUB_OFFSET = "Stream-Fork-Sub-Offset"
# streamdash extension: the stream's own type on SSE responses (whose Content-Type is SSE's).
CONTENT_TYPE = "Stream-Content-Type"

PROTOCOL_HEADERS = (
    "Content-Type, Authorization, If-None-Match, Last-Event-ID, Stream-Seq, Stream-TTL, "
    "Stream-Expires-At, Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, "
    "Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq"
)
EXPOSED_HEADERS = (
    "Stream-Next-Offset, Stream-Up-To-Date, Stream-Closed, Stream-Cursor, Stream-TTL, "
    "Stream-Expires-At, Stream-Start-Index, Stream-Next-Index, Stream-SSE-Data-Encoding, "
    "Stream-Content-Type, "
    "Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, ETag, Location"
)

_TTL_RE = re.compile(r"0|[1-9][0-9]{0,11}")
# RFC 3339, ASCII digits only, the zone checked apart for a clearer message. Matched before
# fromisoformat, which takes ISO forms RFC 3339 does not and stops reading at a NUL.
_EXPIRES_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_UINT_RE = re.compile(r"0|[1-9][0-9]{0,17}")
# Cursors are numbered 20-second intervals: CDN request collapsing keys on them.
_CURSOR_INTERVAL = 20


# A query as Django gives it (QueryDict) or as ``urllib.parse.parse_qs`` does (WebSocket scopes).
Query = QueryDict | Mapping[str, list[str]]


def _single(query: Query, name: str) -> str | None:
    values = query.getlist(name) if isinstance(query, QueryDict) else query.get(name, [])
    if len(values) > 1:
        raise BadRequest(f"Query parameter {name!r} was given {len(values)} times; give it once.")
    return values[0] if values else None


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def stream_config(request: StreamRequest, content_type: str) -> StreamConfig:
    ttl_header = request.headers.get(TTL)
    expires_header = request.headers.get(EXPIRES_AT)
    if ttl_header is not None and expires_header is not None:
        raise BadRequest("Send Stream-TTL or Stream-Expires-At, not both.")
    ttl: int | None = None
    expires_at: dt.datetime | None = None
    if ttl_header is not None:
        if not _TTL_RE.fullmatch(ttl_header.strip()):
            raise BadRequest(
                f"Stream-TTL {ttl_header!r} is not valid: give whole seconds, e.g. 3600.",
                header=TTL,
            )
        ttl = int(ttl_header)
    if expires_header is not None:
        value = expires_header.strip()
        try:
            if not _EXPIRES_RE.fullmatch(value):
                raise ValueError(value)
            expires_at = dt.datetime.fromisoformat(value.upper())
        except ValueError:
            raise BadRequest(
                f"Stream-Expires-At {expires_header!r} is not an RFC 3339 timestamp.",
                header=EXPIRES_AT,
            ) from None
        if expires_at.tzinfo is None:
            raise BadRequest(
                "Stream-Expires-At needs a time zone (Z or +00:00).", header=EXPIRES_AT
            )
        try:
            # In UTC, as stored and compared: 9999-12-31T23:59:59-01:00 is past year 9999.
            expires_at = expires_at.astimezone(dt.UTC)
        except OverflowError:
            raise BadRequest(
                f"Stream-Expires-At {expires_header!r} is outside the years 1–9999 in UTC.",
                header=EXPIRES_AT,
            ) from None
    return StreamConfig(
        content_type=content_type,
        ttl_seconds=ttl,
        expires_at=expires_at,
        closed=is_true(request.headers.get(CLOSED)),
    )


@dataclass(frozen=True)
class ForkRequest:
    """A create's fork headers: the source's path, the offset and the sub-offset."""

    source: str
    offset: str | None
    sub_offset: int


def fork_request(request: StreamRequest) -> ForkRequest | None:
    source = request.headers.get(FORKED_FROM)
    offset = request.headers.get(FORK_OFFSET)
    sub = request.headers.get(FORK_SUB_OFFSET)
    if source is None:
        if offset is not None or sub is not None:
            raise BadRequest(
                f"{FORK_OFFSET} and {FORK_SUB_OFFSET} need {FORKED_FROM}, the stream to fork.",
                header=FORK_OFFSET if offset is not None else FORK_SUB_OFFSET,
            )
        return None
    if offset is not None:
        offset = offset.strip()
        if offset not in (START, NOW):
            parse_offset(offset, tail=0)  # validates the shape
    sub_offset = 0
    if sub is not None:
        if not _UINT_RE.fullmatch(sub.strip()):
            raise BadRequest(
                f"{FORK_SUB_OFFSET} must be a non-negative integer, got {sub!r}.",
                header=FORK_SUB_OFFSET,
            )
        sub_offset = int(sub)
    if sub_offset and offset is None:
        raise BadRequest(
            f"{FORK_SUB_OFFSET} counts from {FORK_OFFSET}: send both.", header=FORK_SUB_OFFSET
        )
    return ForkRequest(source.strip(), offset, sub_offset)


def producer_claim(request: StreamRequest) -> ProducerClaim | None:
    names = ("Producer-Id", "Producer-Epoch", "Producer-Seq")
    values = [request.headers.get(n) for n in names]
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise BadRequest("Send Producer-Id, Producer-Epoch and Producer-Seq together, or none.")
    producer_id, epoch, seq = (v.strip() for v in values if v is not None)
    if not producer_id or len(producer_id) > 200:
        raise BadRequest("Producer-Id must be 1–200 characters.", header="Producer-Id")
    for name, value in (("Producer-Epoch", epoch), ("Producer-Seq", seq)):
        if not _UINT_RE.fullmatch(value):
            raise BadRequest(f"{name} must be a non-negative integer, got {value!r}.", header=name)
    return ProducerClaim(producer_id, int(epoch), int(seq))


@dataclass(frozen=True)
class ReadRequest:
    offset: str | None  # as given (None: not given)
    live: str | None  # None, "long-poll" or "sse"
    cursor: str | None
    idle_timeout: float | None  # streamdash ?timeout=S
    ndjson: bool

    def start_index(self, tail: int) -> int:
        """The index this read starts at; ``tail`` is the stream's next index."""
        if self.offset is None:
            return 0
        return min(parse_offset(self.offset, tail=tail), tail)


def read_params(query: Query, *, last_event_id: str | None = None) -> ReadRequest:
    """The read parameters of a stream URL, for HTTP and WebSocket alike: ``offset``,
    ``start_index``, ``Last-Event-ID`` (wins), ``live``, ``cursor``, ``timeout``, ``format``."""
    live = _single(query, "live")
    if live not in (None, "long-poll", "sse"):
        raise BadRequest(f"live must be long-poll or sse, got {live!r}.")
    offset = _single(query, "offset")
    start_index = _single(query, "start_index")
    if start_index is not None:
        if not _UINT_RE.fullmatch(start_index):
            raise BadRequest(f"start_index must be a non-negative integer, got {start_index!r}.")
        offset = offset_for(int(start_index))
    if last_event_id:
        offset = last_event_id.strip()
    if offset is not None and offset not in (START, NOW):
        parse_offset(offset, tail=0)  # validates the shape ("" included)
    if live is not None and offset is None:
        raise BadRequest(f"live={live} needs an offset (use -1 for the start, now for the tail).")
    timeout_value = _single(query, "timeout")
    idle_timeout: float | None = None
    if timeout_value is not None:
        try:
            idle_timeout = float(timeout_value)
        except ValueError:
            raise BadRequest(
                f"timeout must be a number of seconds, got {timeout_value!r}."
            ) from None
        if not 0 < idle_timeout <= 86400:
            raise BadRequest("timeout must be between 0 and 86400 seconds.")
    fmt = _single(query, "format")
    if fmt not in (None, "ndjson"):
        raise BadRequest(f"format must be ndjson, got {fmt!r}.")
    return ReadRequest(offset, live, _single(query, "cursor"), idle_timeout, fmt == "ndjson")


def next_cursor(client_cursor: str | None) -> str:
    current = int(time.time()) // _CURSOR_INTERVAL
    if client_cursor is not None and client_cursor.isdigit() and int(client_cursor) >= current:
        # A client already at this interval must get a newer cursor, or a CDN would serve it the
        # same collapsed response again; jitter spreads the herd.
        return str(int(client_cursor) + random.randint(1, 180))
    return str(current)


def set_position_headers(
    response: StreamResponse, *, start: int, next_index: int, up_to_date: bool, closed: bool
) -> None:
    response[NEXT_OFFSET] = offset_for(next_index)
    response[START_INDEX] = str(start)
    response[NEXT_INDEX] = str(next_index)
    if up_to_date:
        response[UP_TO_DATE] = "true"
    if closed:
        response[CLOSED] = "true"


def etag(stream_pk: int, generation: str, start: int, end: int, closed: bool) -> str:
    return f'"{stream_pk}.{generation}.{start}.{end}{".c" if closed else ""}"'
