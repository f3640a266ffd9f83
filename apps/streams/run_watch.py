"""The hub's run half: one subscription and one reload per run change per process.

A live read of a whole run (``/subscribe``) needs the run and its list of streams, and needs
them again whenever the run changes. Each server process's hub joins the run's Channels group
(``run.<id>``, which ``notify.run_changed`` sends to) once, keeps the latest snapshot in a
``RunState`` shared by every local subscriber, reloads it once per ``run.changed``
notification and wakes them all.

Cost per run change with N subscribers of that run in one process (two queries a load):

    before: N group subscriptions (one per connection), N loads on every change
    now:    1 group subscription,                      1 load on every change

Notifications that arrive during a load are folded into one more load. A lost notification
is recovered by the hub's periodic re-check: one ``stamps`` query for all watched runs of a
source every ``STREAMDASH_TAIL_CHECK_SECONDS``, and a reload of those whose stamp moved.

Runs sit above streams, so this module cannot read them: the caller passes a ``RunSource``,
whose functions (sync, run on the hub's read pool) return an opaque snapshot and its stamp.
``tests/streams/test_run_watch.py`` counts the loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from apps.streams import threads
from apps.streams.notify import run_group

if TYPE_CHECKING:
    from apps.streams.hub import Hub

logger = logging.getLogger(__name__)
S = TypeVar("S")
_UNLOADED: Any = object()


class RunGone(Exception):
    """The run does not exist (any more), or could not be loaded to start a watch."""


@dataclass(frozen=True, eq=False)
class RunSource(Generic[S]):
    """How the hub reads a run it cannot import. ``load(run_id)`` returns ``(stamp, snapshot)``
    or ``None`` when the run is gone; ``stamps(run_ids)`` returns, in one query for many runs,
    the stamp ``load`` would return for each (a run missing from it is gone). Keep one source
    per kind of snapshot (a module constant): watches are shared per run and source."""

    load: Callable[[str], tuple[Hashable, S] | None]
    stamps: Callable[[Sequence[str]], Mapping[str, Hashable]]


class RunState(Generic[S]):
    """The latest snapshot of one run, shared by every local subscriber with the same source.
    ``snapshot`` is ``None`` once the run is gone; ``version`` moves on every change."""

    def __init__(self, run_id: str, source: RunSource[S]) -> None:
        self.run_id = run_id
        self.source = source
        self.snapshot: S | None = None
        self.stamp: Hashable = _UNLOADED
        self.version = 0
        self.subscribers = 0
        self.ready = asyncio.Event()
        self.loading = False
        self.dirty = False
        self._changed = asyncio.Event()

    def _wake(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, version: int) -> None:
        """Return once the state is newer than ``version``."""
        while self.version == version:
            await self._changed.wait()


class RunWatches:
    """The run states of one hub, by run id and source."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.runs: dict[str, dict[RunSource[Any], RunState[Any]]] = {}
        self._joined: set[str] = set()
        self._group_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def watch(self, run_id: str, source: RunSource[S]) -> AsyncIterator[RunState[S]]:
        """Hold a run's shared state for the life of one subscriber; ``RunGone`` if the run
        does not exist. Only the first local subscriber of a run loads it."""
        await self.hub._ensure_started()
        states = self.runs.setdefault(run_id, {})
        state: RunState[S] | None = states.get(source)
        if state is None:
            state = states[source] = RunState(run_id, source)
            # The load runs apart from this subscriber: its cancellation must not strand
            # others waiting for ``ready``.
            self.hub._spawn(self._start(state))
        state.subscribers += 1
        try:
            await state.ready.wait()
            if state.snapshot is None:
                raise RunGone(run_id)
            yield state
        finally:
            state.subscribers -= 1
            if state.subscribers == 0 and states.get(source) is state:
                del states[source]
                if not states and self.runs.get(run_id) is states:
                    del self.runs[run_id]
                await self._sync_group(run_id)

    async def _start(self, state: RunState[Any]) -> None:
        # Join the group before the first load: a commit in between is then either in what
        # the load reads or in a notification that triggers another load.
        await self._sync_group(state.run_id)
        self._schedule(state)

    async def _sync_group(self, run_id: str) -> None:
        """Make the hub's membership of the run's group match whether anyone watches it.
        Serialized, so a quick leave cannot race a join into a stray membership."""
        layer, channel = self.hub.layer, self.hub.channel
        assert channel is not None  # watch() started the hub
        async with self._group_lock:
            wanted, joined = run_id in self.runs, run_id in self._joined
            try:
                if wanted and not joined:
                    await layer.group_add(run_group(run_id), channel)
                    self._joined.add(run_id)
                elif joined and not wanted:
                    self._joined.discard(run_id)
                    await layer.group_discard(run_group(run_id), channel)
            except Exception as exc:
                # Degraded, not broken: the periodic re-check still finds every change, and
                # the hub rejoins the group when the layer is back.
                self.hub.layer_failed(f"group {run_group(run_id)}", exc)

    def groups(self) -> list[str]:
        """The run groups the hub should be in (for its rejoin after a layer outage)."""
        return [run_group(run_id) for run_id in self.runs]

    def on_changed(self, message: dict[str, Any]) -> None:
        for state in self.runs.get(message["run"], {}).values():
            self._schedule(state)

    def _schedule(self, state: RunState[Any]) -> None:
        state.dirty = True
        if not state.loading:
            state.loading = True
            self.hub._spawn(self._reload(state))

    async def _reload(self, state: RunState[Any]) -> None:
        """Load until no change is pending: one load for all local subscribers."""
        try:
            while state.dirty and state.subscribers:
                state.dirty = False
                try:
                    loaded = await threads.run_in("read", state.source.load, state.run_id)
                except Exception:
                    # Keep the last snapshot; the stamp did not move, so the re-check retries.
                    logger.exception("hub reload of run %s failed", state.run_id)
                    break
                stamp, snapshot = loaded if loaded is not None else (None, None)
                if (stamp, snapshot) != (state.stamp, state.snapshot):
                    state.stamp, state.snapshot = stamp, snapshot
                    state._wake()
        finally:
            state.loading = False
            state.ready.set()

    async def recheck(self) -> None:
        """The safety net for lost notifications: one ``stamps`` query per source for all
        watched runs, and a reload of each run whose stamp moved."""
        by_source: dict[RunSource[Any], list[RunState[Any]]] = {}
        for states in self.runs.values():
            for source, state in states.items():
                if state.ready.is_set() and not state.loading:
                    by_source.setdefault(source, []).append(state)
        for source, watched in by_source.items():
            try:
                stamps = await threads.run_in(
                    "read", source.stamps, [state.run_id for state in watched]
                )
            except Exception:
                logger.exception("hub re-check of runs failed")
                continue
            for state in watched:
                if stamps.get(state.run_id) != state.stamp:
                    self._schedule(state)
