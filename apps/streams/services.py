"""The write path: every append, create, close and delete of a stream goes through here.

One transaction per request: lock the stream row, check the producer, take dense indices, insert
the whole batch in one statement, bump the counters, save the producer, commit. Readers are told
only after the commit (``transaction.on_commit``), so an acknowledgement always means durable
and a reader never sees an index that could still roll back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.projects.models import Project
from apps.streams import inserts, notify, producers, rows, schemas
from apps.streams.limits import check_append, check_config, names_nothing
from apps.streams.models import Stream
from apps.streams.producers import ProducerClaim
from apps.streams.rows import LockedStream, ProducerState
from streamdash.core.content import base_content_type, is_json_type
from streamdash.core.errors import (
    ContentTypeMismatch,
    EmptyBody,
    NotFound,
    ProducerSeqGap,
    RunFinished,
    SeqConflict,
    StreamClosed,
    StreamExists,
    StreamFull,
    StreamNotFound,
)
from streamdash.core.runstatus import FINAL_STATUSES

__all__ = [
    "AppendResult",
    "ProducerClaim",
    "StreamConfig",
    "StreamRef",
    "chunks_append",
    "stream_close",
    "stream_create",
    "stream_delete",
    "stream_lookup",
    "stream_touch",
    "streams_close_for_run",
]


_TOUCH_GRANULARITY = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class StreamRef:
    """A stream by name, scoped to its project: a run's stream (``run_id``) or standalone."""

    project_id: int
    run_id: str | None
    key: str


def _by_ref(ref: StreamRef) -> QuerySet[Stream]:
    query = Stream.objects.filter(project_id=ref.project_id, key=ref.key)
    if ref.run_id is not None:
        return query.filter(run_id=ref.run_id)
    return query.filter(run__isnull=True)


def stream_lookup(ref: StreamRef) -> Stream | None:
    """The stream a reference names, unless it is missing or expired."""
    if names_nothing(ref.run_id, ref.key):
        return None
    stream = _by_ref(ref).first()
    if stream is None or _is_expired(stream, timezone.now()):
        return None
    return stream


@dataclass(frozen=True)
class StreamConfig:
    content_type: str = "application/octet-stream"
    ttl_seconds: int | None = None
    expires_at: dt.datetime | None = None
    closed: bool = False


@dataclass(frozen=True)
class AppendResult:
    stream_id: int
    start_index: int
    next_index: int
    closed: bool
    duplicate: bool = False
    producer: ProducerClaim | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _same_config(stream: Stream, config: StreamConfig) -> bool:
    return (
        base_content_type(stream.content_type) == base_content_type(config.content_type)
        and stream.ttl_seconds == config.ttl_seconds
        and (config.ttl_seconds is not None or stream.expires_at == config.expires_at)
        and stream.closed == config.closed
    )


def _expiry(config: StreamConfig, now: dt.datetime) -> dt.datetime | None:
    if config.ttl_seconds is not None:
        return now + dt.timedelta(seconds=config.ttl_seconds)
    return config.expires_at


def stream_create(
    *,
    project: Project,
    key: str,
    config: StreamConfig,
    run_id: str | None = None,
    chunks: list[bytes] | None = None,
) -> tuple[Stream, bool]:
    """Create a stream, idempotently: the same config again returns the existing stream
    (``created`` False); a different config raises ``StreamExists`` (409). A run's stream needs
    the run to exist in the project and not to have finished."""
    check_config(content_type=config.content_type, ttl_seconds=config.ttl_seconds)
    run_status = _run_status(project, run_id) if run_id is not None else None
    if run_status in FINAL_STATUSES:
        raise RunFinished(f"Run {run_id} has finished; it cannot get new streams.", run=run_id)
    now = timezone.now()
    lookup = (
        {"run_id": run_id, "key": key}
        if run_id is not None
        else {"project": project, "run": None, "key": key}
    )
    try:
        with transaction.atomic():
            existing = Stream.objects.select_for_update().filter(**lookup).first()
            if existing is not None and _is_expired(existing, now):
                _delete_now(existing)
                existing = None
            if existing is not None:
                if not _same_config(existing, config):
                    raise StreamExists(
                        f"Stream {key!r} already exists with a different configuration "
                        f"(content type {existing.content_type}).",
                        content_type=existing.content_type,
                    )
                return existing, False
            stream = Stream.objects.create(
                project=project,
                run_id=run_id,
                key=key,
                content_type=config.content_type,
                ttl_seconds=config.ttl_seconds,
                expires_at=_expiry(config, now),
                closed=config.closed,
                closed_at=now if config.closed else None,
            )
            if chunks:
                _insert(stream, chunks, producer="", now=now)
                stream.save(update_fields=["next_index", "byte_size", "updated_at"])
            transaction.on_commit(
                lambda: notify.stream_changed(
                    stream_id=stream.pk, next_index=stream.next_index, closed=stream.closed
                )
            )
            if run_id is not None and run_status is not None:
                # Run subscribers pick up the new stream from the run's group.
                transaction.on_commit(
                    lambda: notify.run_changed(run_id=run_id, status=run_status)
                )
            return stream, True
    except IntegrityError:
        # Two creates raced; the loser sees the winner's row on retry.
        return stream_create(
            project=project, key=key, config=config, run_id=run_id, chunks=chunks
        )


def _run_status(project: Project, run_id: str) -> str:
    """The status of one of the project's runs, or ``NotFound``. Read through the project's
    reverse relation: runs sit above streams and are not imported here."""
    if names_nothing(run_id):
        raise NotFound(f"Run {run_id!r} not found.", run=run_id)
    status: str | None = project.runs.filter(pk=run_id).values_list("status", flat=True).first()
    if status is None:
        raise NotFound(f"Run {run_id!r} not found.", run=run_id)
    return status


def stream_touch(stream: Stream) -> None:
    """Sliding TTL: a stream created with ``Stream-TTL`` lives that long after its last use.
    Written at most once a second per stream, so a busy reader does not write on every read."""
    if stream.ttl_seconds is None:
        return
    expires_at = timezone.now() + dt.timedelta(seconds=stream.ttl_seconds)
    if stream.expires_at is not None and expires_at - stream.expires_at < _TOUCH_GRANULARITY:
        return
    stream.expires_at = expires_at
    Stream.objects.filter(pk=stream.pk).update(expires_at=expires_at)


def _is_expired(stream: Stream | LockedStream, now: dt.datetime) -> bool:
    return stream.expires_at is not None and stream.expires_at <= now


def _delete_now(stream: Stream) -> None:
    stream_pk = stream.pk
    stream.delete()
    transaction.on_commit(lambda: notify.stream_deleted(stream_id=stream_pk))


def _insert(
    stream: Stream | LockedStream, chunks: list[bytes], *, producer: str, now: dt.datetime
) -> None:
    size = sum(len(c) for c in chunks)
    if stream.byte_size + size > settings.STREAMDASH_MAX_STREAM_BYTES:
        raise StreamFull(
            f"The stream holds {stream.byte_size} bytes; {size} more would pass its limit of "
            f"{settings.STREAMDASH_MAX_STREAM_BYTES} bytes.",
            limit=settings.STREAMDASH_MAX_STREAM_BYTES,
            byte_size=stream.byte_size,
        )
    inserts.insert_chunks(
        stream_id=stream.pk, start=stream.next_index, chunks=chunks, producer=producer, now=now
    )
    stream.next_index += len(chunks)
    stream.byte_size += size


def chunks_append(
    *,
    chunks: list[bytes],
    stream_id: int | None = None,
    ref: StreamRef | None = None,
    content_type: str | None = None,
    producer: ProducerClaim | None = None,
    stream_seq: str | None = None,
    close: bool = False,
) -> AppendResult:
    """Append a batch (possibly empty, when only closing) to a stream, durably. The stream is
    named by ``stream_id`` or by ``ref``; either way it is found and locked in one query that
    also reads the producer's state (``apps.streams.rows``)."""
    if not chunks and not close:
        raise EmptyBody("The body is empty; send at least one chunk, or Stream-Closed: true.")
    check_append(stream_seq=stream_seq, producer_id=producer.producer_id if producer else None)
    if ref is not None and names_nothing(ref.run_id, ref.key):
        raise StreamNotFound("Stream not found.")
    now = timezone.now()
    where = (
        {"project_id": ref.project_id, "run_id": ref.run_id, "key": ref.key}
        if ref is not None
        else {"stream_id": stream_id}
    )
    with transaction.atomic():
        stream, state = rows.lock_for_append(
            producer_id=producer.producer_id if producer else None, **where
        )
        if stream is None or _is_expired(stream, now):
            raise StreamNotFound("Stream not found.")
        if producer is not None:
            try:
                if producers.is_duplicate(state, producer):
                    assert state is not None
                    return _duplicate_result(stream, state, producer)
            except ProducerSeqGap:
                if stream.closed:
                    raise _closed(stream) from None
                raise
        if stream.closed:
            if close and not chunks:
                return AppendResult(stream.pk, stream.next_index, stream.next_index, True)
            raise _closed(stream)
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
        if chunks:
            _insert(stream, chunks, producer=producer.producer_id if producer else "", now=now)
        if close:
            stream.closed = True
            stream.closed_at = now
        if stream.ttl_seconds is not None:
            # Stream-TTL is an idle timeout: every append or close renews it.
            stream.expires_at = now + dt.timedelta(seconds=stream.ttl_seconds)
        result = {"start": start, "next": stream.next_index, "closed": close}
        rows.save_append(
            stream,
            now=now,
            producer=(producer.producer_id, producer.epoch, producer.seq, result)
            if producer is not None
            else None,
        )
        end, closed, pk = stream.next_index, stream.closed, stream.pk
        small = notify.inline_chunks(start, chunks, now, producer.producer_id if producer else "")
        transaction.on_commit(
            lambda: notify.stream_appended(
                stream_id=pk, start=start, end=end, closed=closed, chunks=small
            )
        )
    return AppendResult(pk, start, end, closed, producer=producer)


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


def _closed(stream: LockedStream) -> StreamClosed | RunFinished:
    """The error for a write to a closed stream. A run reaching a final status closes its
    streams (under their row locks), so an open stream always belongs to an unfinished run,
    and only this error path needs to look at the run."""
    headers = {"Stream-Closed": "true"}
    if (
        stream.run_id is not None
        and Stream.objects.filter(pk=stream.pk, run__status__in=list(FINAL_STATUSES)).exists()
    ):
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


def stream_close(*, stream_id: int) -> AppendResult:
    return chunks_append(stream_id=stream_id, chunks=[], close=True)


def stream_delete(*, stream_id: int) -> None:
    with transaction.atomic():
        stream = Stream.objects.select_for_update().filter(pk=stream_id).first()
        if stream is None:
            raise NotFound("Stream not found.")
        _delete_now(stream)


def streams_close_for_run(*, run_id: str) -> int:
    """Close every open stream of a run (its final status was reached). Returns how many."""
    ids = list(Stream.objects.filter(run_id=run_id, closed=False).values_list("pk", flat=True))
    for pk in ids:
        stream_close(stream_id=pk)
    return len(ids)
