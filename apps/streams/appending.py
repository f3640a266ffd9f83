"""What an append does to a locked stream row: the protocol's rules, without I/O.

Both executors of the write path run these rules between reading the locked row and writing
it back: the sync one on Django's connection (``services.chunks_append``) and the async one on
psycopg's pool (``apps.streams.pg_append``). Given the row, the producer's state and the
request, ``plan_append`` either answers at once (a duplicate, a close of a closed stream), raises
the protocol's error, or returns the plan: the chunks to insert at which index, the counters and
the producer state to save, and what to tell readers after the commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.streams import notify, producers, schemas
from apps.streams.producers import ProducerClaim
from apps.streams.rows import LockedStream, ProducerState
from streamdash.core.content import base_content_type, is_json_type
from streamdash.core.errors import (
    ContentTypeMismatch,
    EmptyBody,
    ProducerSeqGap,
    RunFinished,
    SeqConflict,
    StreamClosed,
    StreamDeleted,
    StreamFull,
    StreamNotFound,
)


@dataclass(frozen=True)
class AppendResult:
    stream_id: int
    start_index: int
    next_index: int
    closed: bool
    duplicate: bool = False
    producer: ProducerClaim | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class AppendRequest:
    """One append as the protocol states it: the chunks and the headers that rule them."""

    chunks: list[bytes]
    content_type: str | None = None
    producer: ProducerClaim | None = None
    stream_seq: str | None = None
    close: bool = False


@dataclass
class AppendPlan:
    stream: LockedStream  # with its counters, expiry and close already moved on
    start: int
    chunks: list[bytes]
    producer_id: str
    # (id, epoch, seq, result) to save for an idempotent producer
    producer_row: tuple[str, int, int, dict[str, Any]] | None
    inline: list[notify.InlineChunk] | None  # the batch, when small enough for the notice
    result: AppendResult


def check_request(request: AppendRequest) -> None:
    if not request.chunks and not request.close:
        raise EmptyBody("The body is empty; send at least one chunk, or Stream-Closed: true.")


def plan_append(
    stream: LockedStream | None,
    state: ProducerState | None,
    request: AppendRequest,
    now: dt.datetime,
) -> AppendPlan | AppendResult:
    chunks, content_type, producer = request.chunks, request.content_type, request.producer
    stream_seq, close = request.stream_seq, request.close
    if stream is None or (stream.expires_at is not None and stream.expires_at <= now):
        raise StreamNotFound("Stream not found.")
    if stream.deleted:
        raise StreamDeleted("The stream was deleted; only its forks still read its chunks.")
    if producer is not None:
        try:
            if producers.is_duplicate(state, producer):
                assert state is not None
                return _duplicate_result(stream, state, producer)
        except ProducerSeqGap:
            if stream.closed:
                raise closed_error(stream) from None
            raise
    if stream.closed:
        if close and not chunks:
            return AppendResult(stream.pk, stream.next_index, stream.next_index, True)
        raise closed_error(stream)
    if (
        chunks
        and content_type is not None
        and base_content_type(content_type) != base_content_type(stream.content_type)
    ):
        raise ContentTypeMismatch(
            f"The stream's content type is {stream.content_type}; this append sent "
            f"{content_type}.",
            expected=stream.content_type,
            received=content_type,
        )
    if stream_seq is not None:
        if stream.last_stream_seq and stream_seq <= stream.last_stream_seq:
            raise SeqConflict(
                f"Stream-Seq {stream_seq!r} is not greater than the last one "
                f"({stream.last_stream_seq!r}).",
                last_seq=stream.last_stream_seq,
            )
        stream.last_stream_seq = stream_seq
    if chunks and stream.schema is not None and is_json_type(stream.content_type):
        schemas.validate_chunks(stream.schema, chunks)
    start = stream.next_index
    size = sum(map(len, chunks))
    if chunks:
        check_room(stream.byte_size, size)
    stream.next_index += len(chunks)
    stream.byte_size += size
    if close:
        stream.closed = True
        stream.closed_at = now
    if stream.ttl_seconds is not None:
        # Stream-TTL is an idle timeout: every append or close renews it.
        stream.expires_at = now + dt.timedelta(seconds=stream.ttl_seconds)
    producer_id = producer.producer_id if producer is not None else ""
    saved = {"start": start, "next": stream.next_index, "closed": close}
    return AppendPlan(
        stream=stream,
        start=start,
        chunks=chunks,
        producer_id=producer_id,
        producer_row=(producer.producer_id, producer.epoch, producer.seq, saved)
        if producer is not None
        else None,
        inline=notify.inline_chunks(start, chunks, now, producer_id),
        result=AppendResult(stream.pk, start, stream.next_index, stream.closed, producer=producer),
    )


def check_room(byte_size: int, size: int) -> None:
    """A stream holds at most ``STREAMDASH_MAX_STREAM_BYTES`` of chunks."""
    if byte_size + size > settings.STREAMDASH_MAX_STREAM_BYTES:
        raise StreamFull(
            f"The stream holds {byte_size} bytes; {size} more would pass its limit of "
            f"{settings.STREAMDASH_MAX_STREAM_BYTES} bytes.",
            limit=settings.STREAMDASH_MAX_STREAM_BYTES,
            byte_size=byte_size,
        )


def _duplicate_result(
    stream: LockedStream, state: ProducerState, claim: ProducerClaim
) -> AppendResult:
    original = state.last_result if claim.seq == state.last_seq else {}
    return AppendResult(
        stream.pk,
        int(original.get("start", stream.next_index)),
        int(original.get("next", stream.next_index)),
        stream.closed,
        duplicate=True,
        producer=ProducerClaim(claim.producer_id, state.epoch, state.last_seq),
    )


def closed_error(stream: LockedStream) -> StreamClosed | RunFinished:
    """The error for a write to a closed stream: a finished run's, or a closed stream's."""
    headers = {"Stream-Closed": "true"}
    if stream.run_final:
        return RunFinished(
            f"Run {stream.run_id} has finished; its streams cannot change.",
            headers=headers,
            run=stream.run_id,
            next_index=stream.next_index,
        )
    return StreamClosed(
        "The stream is closed; it accepts no more chunks.",
        headers=headers,
        next_index=stream.next_index,
    )


def tell_readers(plan: AppendPlan) -> None:
    """After the commit: the batch's notice to every hub (both executors send this)."""
    notify.stream_appended(
        stream_id=plan.stream.pk,
        start=plan.start,
        end=plan.stream.next_index,
        closed=plan.stream.closed,
        chunks=plan.inline,
    )
