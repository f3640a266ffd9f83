"""Where a fork's chunks are: a fork holds only its own chunks, from its fork point on, and
reads the ones below it from the stream it was forked from (which may be a fork too).

``spans`` walks that chain once per read of a fork's prefix (one query per level; chains are
short, and the walk is never needed for a read at or past the fork point). A fork point never
moves while the source lives; when a source is deleted for good its forks get their prefix
copied first (``apps.streams.forks.detach``), after which they hold every chunk themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.streams.models import Stream

_NO_END = 2**63 - 1


@dataclass(frozen=True)
class Span:
    """The chunks ``start <= index < end`` of a fork's view are stored under ``stream_id``."""

    stream_id: int
    start: int
    end: int


def spans(stream_id: int) -> list[Span]:
    """The spans of a stream's view, in index order, covering every index from 0."""
    found: list[Span] = []
    current, end = stream_id, _NO_END
    while end > 0:
        row = Stream.objects.filter(pk=current).values_list("forked_from_id", "fork_index").first()
        if row is None:
            break
        source, fork_index = row
        start = min(fork_index, end) if source is not None else 0
        if start < end:
            found.append(Span(current, start, end))
        if source is None:
            break
        current, end = source, start
    found.reverse()
    return found
