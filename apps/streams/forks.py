"""Forks: a stream created from another at an index, for "regenerate from here".

A fork copies nothing at creation: it records its source and fork point, and reads the chunks
below the point from the source (``apps.streams.lineage``); its own chunks, and its offsets,
continue from the point. A sub-offset (the protocol's ``Stream-Fork-Sub-Offset``) cuts into
the chunk at the point: for JSON streams it counts messages, so it moves the point; for byte
streams it counts bytes, and that part of the chunk becomes the fork's first own chunk.

While forks read from a stream it is not removed: a delete (or expiry) marks it deleted, so it
answers 410 and its name stays taken, and retention leaves its chunks alone. It goes for good
with its last fork (``services``). Only a bulk delete for good (retention deleting a run)
removes a source under living forks: those get their prefix copied first (``detach``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection
from django.db.models import Sum
from django.db.models.functions import Length

from apps.streams import lineage, selectors
from apps.streams.models import Chunk, Stream
from streamdash.core.content import is_json_type
from streamdash.core.errors import BadRequest, ForkSourceDeleted, StreamNotFound
from streamdash.core.offsets import parse_offset

_C = Chunk._meta.db_table
_COPY = (
    f'INSERT INTO "{_C}" (stream_id, "index", data, producer, created_at) '
    f'SELECT %s, "index", data, producer, created_at FROM "{_C}" '
    'WHERE stream_id = %s AND "index" >= %s AND "index" < %s'
)


@dataclass(frozen=True)
class ForkSpec:
    """What a fork request names: the source (in the caller's project), the offset to fork
    at (None: the source's tail) and the sub-offset within the chunk there."""

    run_id: str | None
    key: str
    offset: str | None = None
    sub_offset: int = 0


@dataclass(frozen=True)
class ForkPoint:
    index: int  # the source's chunks below it are the fork's
    head: bytes | None  # a byte sub-offset's part of the chunk at ``index``


def lock_source(project_id: int, spec: ForkSpec, now: dt.datetime) -> Stream:
    """The source stream, locked (a delete waits for the fork to commit, and then sees it)."""
    source = (
        Stream.objects.select_for_update()
        .filter(project_id=project_id, run_id=spec.run_id, key=spec.key)
        .first()
    )
    if source is None or (source.expires_at is not None and source.expires_at <= now):
        raise StreamNotFound(f"The stream to fork, {spec.key!r}, was not found.", stream=spec.key)
    if source.deleted_at is not None:
        raise ForkSourceDeleted(
            f"The stream to fork, {spec.key!r}, was deleted; fork one of its forks instead.",
            stream=spec.key,
        )
    return source


def fork_point(source: Stream, spec: ForkSpec) -> ForkPoint:
    tail = source.next_index
    index = tail if spec.offset is None else parse_offset(spec.offset, tail=tail)
    if index > tail:
        raise BadRequest(
            f"Stream-Fork-Offset is past the end of the source (next offset is index {tail}).",
            header="Stream-Fork-Offset",
            next_index=tail,
        )
    sub = spec.sub_offset
    if sub == 0:
        return ForkPoint(index, None)
    if is_json_type(source.content_type):
        if index + sub > tail:
            raise _overshoot(f"the source has {tail - index} messages from that offset")
        return ForkPoint(index + sub, None)
    chunk = (
        selectors.chunks_from_index(
            stream_id=source.pk,
            start=index,
            end=index + 1,
            limit=1,
            max_bytes=1,
            fork_index=source.fork_index,
        )
        if index < tail
        else []
    )
    if not chunk or chunk[0].index != index:
        raise _overshoot("the source has no chunk at that offset")
    if sub > len(chunk[0].data):
        raise _overshoot(f"the chunk there is {len(chunk[0].data)} bytes")
    return ForkPoint(index, chunk[0].data[:sub])


def _overshoot(why: str) -> BadRequest:
    return BadRequest(
        f"Stream-Fork-Sub-Offset is too large: {why}.", header="Stream-Fork-Sub-Offset"
    )


def same_fork(
    existing: Stream, source: Stream | None, point: ForkPoint | None, spec: ForkSpec | None
) -> bool:
    """Whether a create asks for what ``existing`` is. A create without fork headers asks
    for nothing about forks (a writer that creates its stream before appending, as the SDK's
    does, may write to a fork); one with them matches a fork of the same source at the same
    point (without an offset, at any point)."""
    if source is None or point is None or spec is None:
        return True
    if existing.forked_from_id != source.pk:
        return False
    return spec.offset is None or (
        existing.fork_index == point.index and existing.fork_sub_offset == spec.sub_offset
    )


def has_forks(stream_id: int) -> bool:
    return Stream.objects.filter(forked_from_id=stream_id).exists()


def detach(stream_ids: Collection[int]) -> None:
    """Before ``stream_ids`` go for good: every fork of theirs that stays gets its prefix
    copied in (one ``INSERT … SELECT`` per span) and stops reading from a source."""
    forks = Stream.objects.filter(forked_from_id__in=list(stream_ids)).exclude(
        pk__in=list(stream_ids)
    )
    for fork in forks.select_for_update():
        copied = 0
        with connection.cursor() as cursor:
            for span in lineage.spans(fork.pk):
                start, end = max(span.start, fork.first_index), min(span.end, fork.fork_index)
                if span.stream_id != fork.pk and start < end:
                    cursor.execute(_COPY, [fork.pk, span.stream_id, start, end])
                    copied += 1
        if copied:
            fork.byte_size += (
                Chunk.objects.filter(
                    stream_id=fork.pk, index__gte=fork.first_index, index__lt=fork.fork_index
                ).aggregate(size=Sum(Length("data")))["size"]
                or 0
            )
        Stream.objects.filter(pk=fork.pk).update(
            forked_from=None, fork_index=0, byte_size=fork.byte_size
        )
