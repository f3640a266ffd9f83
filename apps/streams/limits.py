"""What a stream's columns and the clock can hold, checked before the write path queries.

PostgreSQL refuses text longer than its ``varchar`` and any NUL (a 500 there, stored as-is on
SQLite), and ``now + Stream-TTL`` must stay a datetime: both databases now answer alike, 400.
"""

from __future__ import annotations

import re

from django.db.models import CharField, Model

from apps.streams.models import Producer, Stream
from streamdash.core.errors import BadRequest
from streamdash.core.storable import check_text

__all__ = ["MAX_TTL_SECONDS", "check_append", "check_config", "names_nothing"]

# Ten years: a stream's expiry (now + TTL, renewed on use) stays far inside datetime's range,
# which ends at year 9999 (Stream-TTL takes 12 digits; 3.2e11 seconds overflowed it).
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
# The type is echoed in the Content-Type of every read: printable ASCII only (media types are
# ASCII tokens, RFC 9110, and Django refuses a header with a control character: a 500).
_PRINTABLE_ASCII = re.compile(r"[\t\x20-\x7e]*")


def _column_length(model: type[Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, CharField)
    assert field.max_length is not None
    return field.max_length


_CONTENT_TYPE_MAX = _column_length(Stream, "content_type")
_STREAM_SEQ_MAX = _column_length(Stream, "last_stream_seq")
_PRODUCER_ID_MAX = _column_length(Producer, "producer_id")


def names_nothing(*names: str | None) -> bool:
    """A run id or stream key with a NUL names nothing (and PostgreSQL refuses the query)."""
    return any(name is not None and "\x00" in name for name in names)


def check_config(*, content_type: str, ttl_seconds: int | None) -> None:
    """A new stream's content type and TTL."""
    check_text(
        content_type, name="Content-Type", max_length=_CONTENT_TYPE_MAX, header="Content-Type"
    )
    if not _PRINTABLE_ASCII.fullmatch(content_type):
        raise BadRequest(
            f"Content-Type {content_type!r} is not valid: use printable ASCII.",
            header="Content-Type",
        )
    if ttl_seconds is not None and not 0 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise BadRequest(
            f"Stream-TTL {ttl_seconds} is out of range: give at most {MAX_TTL_SECONDS} seconds "
            "(10 years).",
            header="Stream-TTL",
            max_ttl=MAX_TTL_SECONDS,
        )


def check_append(*, stream_seq: str | None, producer_id: str | None) -> None:
    """An append's Stream-Seq and Producer-Id, both stored with the stream."""
    if stream_seq is not None:
        check_text(stream_seq, name="Stream-Seq", max_length=_STREAM_SEQ_MAX, header="Stream-Seq")
    if producer_id is not None:
        check_text(
            producer_id, name="Producer-Id", max_length=_PRODUCER_ID_MAX, header="Producer-Id"
        )
