"""A live read of a run's stream that does not exist yet waits for it, on the server.

The usual flow triggers a run and renders its stream at once, before the task has created it.
Answering 404 would make every client poll; instead the read waits here, on the hub's shared
watch of the run (``apps.streams.run_watch``: one group subscription and one load per run change
per process, however many readers wait), until the stream is created, the run finishes, or the
wait runs out. A finished run never creates a stream, so its missing stream is a final 404.
Past the wait the answer is still 404 ``stream_not_found``, naming the run's ``run_status``: a
client that sees a status that is not final asks again (streamdash.js and the SDK do).

The wait happens before any response byte, so it is kept short (``STREAMDASH_STREAM_WAIT_SECONDS``,
20 s) for proxies that close a silent request. Only run streams wait: ``/ds/`` streams keep the
Durable Streams protocol's immediate 404.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from apps.runs import selectors
from apps.streams.hub import get_hub
from apps.streams.run_watch import RunGone, RunSource
from streamdash.core.errors import NotFound, StreamNotFound

__all__ = ["RunStreams", "await_run_stream", "missing_stream"]


@dataclass(frozen=True)
class RunStreams:
    """What a waiting reader needs of a run: its status and the keys of its streams."""

    status: str
    final: bool
    keys: frozenset[str]


def _load(run_id: str) -> tuple[Hashable, RunStreams] | None:
    found = selectors.run_with_streams(run_id=run_id)
    if found is None:
        return None
    run, streams = found
    keys = frozenset(s.key for s in streams)
    return selectors.run_stamp(run, streams), RunStreams(run.status, run.is_final, keys)


def _stamps(run_ids: Sequence[str]) -> dict[str, Hashable]:
    return dict(selectors.run_stamps(run_ids))


RUN_STREAMS: RunSource[RunStreams] = RunSource(load=_load, stamps=_stamps)


def missing_stream(run_id: str, key: str, status: str, *, final: bool) -> StreamNotFound:
    """The 404 of a run stream that is not there (yet): ``run_status`` tells a client whether
    to ask again."""
    if final:
        message = f"Stream {key!r} not found: run {run_id} is {status} and creates no more streams."
    else:
        message = f"Stream {key!r} not found yet: run {run_id} is {status}; read again to wait."
    return StreamNotFound(message, stream=key, run=run_id, run_status=status)


async def await_run_stream(run_id: str, key: str, *, wait: float) -> None:
    """Return once the run has a stream ``key``; raise ``missing_stream`` when the run finished
    without it or ``wait`` seconds passed, ``NotFound`` when the run is gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, wait)
    try:
        async with get_hub().watch_run(run_id, RUN_STREAMS) as watch:
            while True:
                state = watch.snapshot
                if state is None:
                    break
                if key in state.keys:
                    return
                remaining = deadline - loop.time()
                if state.final or remaining <= 0:
                    raise missing_stream(run_id, key, state.status, final=state.final)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.changed(watch.version), remaining)
    except RunGone:
        pass
    raise NotFound(f"Run {run_id!r} not found.", run=run_id)
