"""A stream's chunks as a download: NDJSON (one ``{"index", "ts", "data"}`` per line) or the raw
bytes (a JSON array for JSON streams). One exporter for the API's ``?format=ndjson`` and the
dashboard's export links, produced page by page as it is sent, up to the tail the caller saw."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from apps.streams import selectors, threads
from streamdash.core.content import chunk_object, is_json_type

ExportFormat = Literal["ndjson", "raw"]


async def chunks_export(
    *,
    stream_id: int,
    content_type: str,
    start: int,
    end: int,
    fmt: ExportFormat,
    fork_index: int = 0,
) -> AsyncIterator[bytes]:
    """Chunks ``start…end-1`` in ``fmt``, one page at a time."""
    as_array = fmt == "raw" and is_json_type(content_type)
    position, first = start, True
    if as_array:
        yield b"["
    while position < end:
        records = await threads.run_in(
            "read",
            selectors.chunks_from_index,
            stream_id=stream_id,
            start=position,
            end=end,
            fork_index=fork_index,
        )
        if not records:
            break
        if fmt == "ndjson":
            yield b"".join(
                chunk_object({"index": r.index, "ts": r.created_at}, r.data, content_type) + b"\n"
                for r in records
            )
        elif as_array:
            yield (b"" if first else b",") + b",".join(r.data for r in records)
        else:
            yield b"".join(r.data for r in records)
        first = False
        position = records[-1].index + 1
    if as_array:
        yield b"]"
