"""Plain values that travel from the database to the hub and on to every reader."""

from __future__ import annotations

from typing import NamedTuple


class ChunkRecord(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index(), which nothing here calls
    data: bytes
    created_at: float  # seconds since the epoch
    producer: str


class StreamTail(NamedTuple):
    stream_id: int
    first_index: int
    next_index: int
    closed: bool
    fork_index: int = 0  # a fork's chunks below it are its source's (apps.streams.lineage)
