"""The per-process live hub: one subscription per active stream, fanned out to every reader.

Each server process (one event loop) has one hub. For a stream with live readers the hub joins
the Channels group ``stream.<id>`` once, keeps the last few chunks in a ring, and wakes every
local reader when the tail moves. Database reads happen here, once per appended batch per
process (none for small batches: they arrive inside the notification), never once per reader.

Readers behind the ring (a slow reader, or one that started far back) catch up from the
database in pages with keyset reads. A safety re-check reads the tails of all active streams in
one query every ``STREAMDASH_TAIL_CHECK_SECONDS``, so a lost notification (a dropped Redis
connection, a full in-memory channel) delays readers by about that long and never loses a chunk.

Runs are followed here too (``apps.streams.run_watch``): one subscription to the run's group
and one reload per run change per process, for every ``/subscribe`` connection of that run.
Dashboard sockets hear run and access changes through ``Hub.listen`` rather than through a
layer channel of their own: the hub's memberships survive a layer outage (they are rejoined),
a socket's own channel made its handshake fail while Redis was away.

Threads: the hub's database calls run on the bounded ``read`` pool (``apps.streams.threads``),
not through ``sync_to_async(thread_sensitive=True)``. Outside a request context that would put
every hub query on Django's single shared sync thread, behind whatever else queues there;
inside a request context a live reader would pin one thread per connection for its whole life.
``tests/e2e/test_hub.py`` checks that 200 live readers add no threads (see also
streamdash/handlers.py for the request side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.layers import get_channel_layer
from django.conf import settings

from apps.projects import credentials
from apps.projects.services import REVOCATION_GROUP, revoked_among
from apps.streams import layer, notify, selectors, threads
from apps.streams.notify import stream_group
from apps.streams.pacing import WakePacer
from apps.streams.records import ChunkRecord, StreamTail
from apps.streams.run_watch import RunSource, RunState, RunWatches
from streamdash.core import metrics, requestid

logger = logging.getLogger(__name__)
S = TypeVar("S")
T = TypeVar("T")
Listener = Callable[[dict[str, Any]], None]
# A waiting reader's share of a wake round, done in the round itself: True when it is served
# (written to, or nothing new for it) and waits on; False to wake its task instead.
Deliver = Callable[[], bool]


class StreamGone(Exception):
    """The stream was deleted (or expired) while being read."""


@dataclass(slots=True)
class SharedBatch:
    """A batch that one wake round writes, as the same bytes, to every reader waiting at the
    same position with the same framing (``apps.streams.live``): the ring read, the batch and
    its frame are made once per round, not once per reader (they were a third of a round's
    samples with 1,000 SSE readers, py-spy on ``streambench fanout``)."""

    frame: bytes
    end: int
    created_at: float  # the commit time of the batch's first chunk: its lag
    readers: int = 0  # how many readers the round wrote it to


class StreamState:
    """What the hub knows of one stream's tail, shared by all local readers of it."""

    def __init__(self, tail: StreamTail, ring_size: int, ring_bytes: int) -> None:
        self.stream_id = tail.stream_id
        self.first_index = tail.first_index
        self.next_index = tail.next_index
        self.closed = tail.closed
        self.fork_index = tail.fork_index
        self.deleted = False
        # The ring is bounded in chunks and in bytes: a stream of 1 MiB chunks keeps a few,
        # not a gigabyte. Readers behind it read from the database.
        self.ring: deque[ChunkRecord] = deque()
        self.ring_size = ring_size
        self.ring_bytes = ring_bytes
        self._ring_used = 0
        self.readers = 0
        self._loop = asyncio.get_running_loop()
        self._waiters: dict[asyncio.Future[None], Deliver | None] = {}
        self.refresh_lock = asyncio.Lock()
        # The readers of the wake round under way, and how many of them it has served.
        self._round: list[tuple[asyncio.Future[None], Deliver | None]] = []
        self._round_at = 0
        self.pacer = WakePacer(self._begin_round, self._serve_round)
        # What the current wake round writes, per reader position and framing (see
        # ``SharedBatch``); ``round_now`` is the round's ``time.monotonic()``.
        self.round_batches: dict[tuple[int, int, int, Hashable], SharedBatch | None] = {}
        self.round_now = 0.0

    @property
    def ring_start(self) -> int:
        return self.ring[0].index if self.ring else self.next_index

    def wake(self) -> None:
        """Wake every reader now (a close, a deletion, a revocation, a refresh)."""
        self.pacer.now()

    def wake_soon(self) -> None:
        """New chunks: wake the readers now or, with many of them, after a pause that lets
        more chunks join the batch (``apps.streams.pacing``)."""
        self.pacer.soon(self.readers)

    def _begin_round(self) -> None:
        self._round = list(self._waiters.items())
        self._round_at = 0
        self._waiters = {}

    def _serve_round(self, seconds: float) -> bool:
        """Serve the round's readers for about ``seconds``; True once every one is served or
        woken (``apps.streams.pacing`` runs the slices)."""
        round_, at = self._round, self._round_at
        self.round_now = time.monotonic()
        stop = time.perf_counter() + seconds
        while at < len(round_):
            waiter, deliver = round_[at]
            at += 1
            if waiter.done():
                continue
            try:
                served = deliver is not None and deliver()
            except Exception:
                logger.exception("live delivery from the wake round failed")
                served = False
            if served:
                self._waiters[waiter] = deliver
            else:
                waiter.set_result(None)
            if not at % 32 and time.perf_counter() >= stop:
                break
        self._round_at = at
        if at < len(round_):
            return False
        self._round = []
        if self.round_batches:
            # Each batch's lag and ring hits, once per round for all the readers it reached.
            now = time.time()
            for shared in self.round_batches.values():
                if shared is not None:
                    metrics.delivered_from_round(now - shared.created_at, shared.readers)
            self.round_batches = {}
        return True

    async def wait(self, seconds: float, deliver: Deliver | None = None) -> None:
        """Until a ``wake`` that ``deliver`` (if given) does not serve, or ``seconds``. A
        future of the reader's own that the wake resolves, a timeout on the reader's own task:
        ``asyncio.wait_for`` made a task and a timer per reader per wake (14% of the server's
        samples with 100 SSE readers), and ``asyncio.shield`` of one shared future, which
        replaced it, cost two futures and two callbacks per reader per wake (15% with 1,000
        readers; streambench fanout). A reader that ``deliver`` serves stays here across
        rounds: no task step, no timer per round (``apps.streams.live``)."""
        waiter = self._loop.create_future()
        self._waiters[waiter] = deliver
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter
        finally:
            self._waiters.pop(waiter, None)

    def extend(self, records: list[ChunkRecord]) -> None:
        for record in records:
            if record.index < self.next_index:
                continue
            if record.index > self.next_index:
                # A jump (the hub skipped a range too large for its ring): start the ring anew.
                self.ring.clear()
                self._ring_used = 0
            self.ring.append(record)
            self._ring_used += len(record.data)
            self.next_index = record.index + 1
            while len(self.ring) > 1 and (
                len(self.ring) > self.ring_size or self._ring_used > self.ring_bytes
            ):
                self._ring_used -= len(self.ring.popleft().data)

    def from_ring(self, start: int, limit: int, max_bytes: int) -> list[ChunkRecord]:
        """Up to ``limit`` chunks and ``max_bytes`` (at least one chunk) from the ring."""
        if not self.ring or start < self.ring_start or start >= self.next_index:
            return []
        offset = start - self.ring_start
        records: list[ChunkRecord] = []
        total = 0
        for i in range(offset, min(len(self.ring), offset + limit)):
            record = self.ring[i]
            if records and total + len(record.data) > max_bytes:
                break
            total += len(record.data)
            records.append(record)
        return records


class Hub:
    def __init__(self) -> None:
        self.states: dict[int, StreamState] = {}
        layer = get_channel_layer()
        assert layer is not None  # settings.CHANNEL_LAYERS always names a default layer
        self.layer = layer
        self.channel: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._receiver: asyncio.Task[None] | None = None
        self._layer_ok = True
        self._pending: set[asyncio.Task[None]] = set()
        self._start_lock = asyncio.Lock()
        self._listeners: dict[str, set[Listener]] = {}
        self._listened_groups: Counter[str] = Counter()
        # Streams whose first reader is reading the tail: whether a notice came meanwhile.
        self._joining: dict[int, bool] = {}
        # Joins and leaves of listened groups in order: a page that closes its socket as the
        # next page opens one would otherwise leave the group after the new join.
        self._membership_lock = asyncio.Lock()
        self.runs = RunWatches(self)
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "stream.appended": self._on_appended,
            "stream.changed": self._on_changed,
            "stream.deleted": self._on_deleted,
            "run.changed": self.runs.on_changed,
            "credentials.revoked": self._on_revoked,
        }
        # Appends of this loop come straight from ``notify``, marked; the layer's copies of
        # them are skipped.
        self.mark = uuid.uuid4().hex
        notify.hear_here(self.mark, self._hear)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # The loop keeps only weak references to tasks: hold them until they finish.
        task = asyncio.create_task(coroutine, context=requestid.outside_request())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self.channel is not None:
                return
            try:
                # The configured layers (in-memory, Redis pub/sub) take a prefix; the stubs
                # type only channels' base class, whose new_channel takes none.
                self.channel = await self.layer.new_channel("hub.")  # type: ignore[call-arg]
            except Exception as exc:
                # Readers are served by the tail re-check alone until the rejoin succeeds.
                self.channel = f"hub.unjoined.{uuid.uuid4().hex}"
                self.layer_failed("hub channel", exc)
            await self.join(REVOCATION_GROUP)
            # Process-wide loops: their log lines belong to no request (requestid.py).
            outside = requestid.outside_request()
            self._receiver = asyncio.create_task(self._receive_loop(self.channel), context=outside)
            self._tasks = [asyncio.create_task(self._tail_check_loop(), context=outside)]

    async def join(self, group: str) -> None:
        """Join a group; if the layer is away, carry on (the rejoin adds it later)."""
        assert self.channel is not None
        try:
            await self.layer.group_add(group, self.channel)
        except Exception as exc:
            self.layer_failed(f"group {group}", exc)

    async def leave(self, group: str) -> None:
        assert self.channel is not None
        with contextlib.suppress(Exception):
            await self.layer.group_discard(group, self.channel)

    def layer_failed(self, what: str, exc: BaseException) -> None:
        self._layer_ok = False
        layer.health.failed(what, exc)

    async def _rejoin(self) -> None:
        """After a layer outage: a fresh channel, every group joined again, one receiver.
        Memberships may have been lost with the layer (or never made while it was away)."""
        groups = [
            REVOCATION_GROUP,
            *(stream_group(stream_id) for stream_id in self.states),
            *self.runs.groups(),
            *self._listened_groups,
        ]
        try:
            channel = await self.layer.new_channel("hub.")  # type: ignore[call-arg]
            for group in groups:
                await self.layer.group_add(group, channel)
        except Exception as exc:
            layer.health.failed("rejoin", exc)
            return
        if self._receiver is not None:
            self._receiver.cancel()
        self.channel, self._layer_ok = channel, True
        self._receiver = asyncio.create_task(
            self._receive_loop(channel), context=requestid.outside_request()
        )
        layer.health.ok()
        # Whatever was sent while the hub was away, the tail re-check picks up now.
        await self._check_tails()

    async def _receive_loop(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.layer_failed("receive", exc)
                await asyncio.sleep(1)
                continue
            if message.get("origin") != self.mark:
                self._hear(message)

    def _hear(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(message)
        for listener in list(self._listeners.get(kind, ())):
            listener(message)

    async def _tail_check_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.STREAMDASH_TAIL_CHECK_SECONDS)
            if not self._layer_ok:
                await self._rejoin()
            await self._check_tails()
            await self.runs.recheck()
            await self._check_keys()

    async def _check_tails(self) -> None:
        if not self.states:
            return
        asked = list(self.states)
        try:
            tails = await threads.run_in("read", selectors.stream_tails, asked)
        except Exception:
            logger.exception("hub tail check failed")
            return
        # Only the streams asked about: one whose first reader came during the read has no
        # tail here, and is not deleted for that.
        for stream_id in asked:
            state = self.states.get(stream_id)
            if state is None:
                continue
            tail = tails.get(stream_id)
            if tail is None:
                self._mark_deleted(state)
            elif (
                tail.next_index > state.next_index
                or tail.closed != state.closed
                or tail.first_index != state.first_index
            ):
                metrics.tail_recheck_found()
                self._spawn(self._refresh(state, tail))

    async def _check_keys(self) -> None:
        """End the live connections of keys revoked elsewhere, even if the broadcast of the
        revocation was lost: one query a second for the keys that hold live connections."""
        keys = credentials.live_keys()
        if not keys:
            return
        try:
            revoked = await threads.run_in("read", revoked_among, keys)
        except Exception:
            logger.exception("hub key re-check failed")
            return
        for key_id in revoked:
            credentials.key_revoked(key_id)
        if revoked:
            self._wake_all()

    def _wake_all(self) -> None:
        for state in self.states.values():
            state.wake()

    # --- notifications --------------------------------------------------------------------
    def _on_revoked(self, message: dict[str, Any]) -> None:
        credentials.key_revoked(int(message["key"]))
        self._wake_all()

    def _unheard(self, message: dict[str, Any]) -> StreamState | None:
        """The state a stream message is for; None (the message noted if the stream's first
        reader is joining) when this process has none."""
        state = self.states.get(message["stream"])
        if state is None and message["stream"] in self._joining:
            self._joining[message["stream"]] = True
        return state

    def _on_appended(self, message: dict[str, Any]) -> None:
        state = self._unheard(message)
        if state is None:
            return
        chunks = message.get("chunks")
        if chunks is not None and message["start"] <= state.next_index:
            state.extend([ChunkRecord(*c) for c in chunks if c[0] >= state.next_index])
            state.closed = state.closed or message["closed"]
            state.wake_soon()
        elif message["end"] > state.next_index or message["closed"] != state.closed:
            self._spawn(self._refresh(state, None))

    def _on_changed(self, message: dict[str, Any]) -> None:
        state = self._unheard(message)
        if state is not None and (
            message["end"] > state.next_index
            or message["closed"] != state.closed
            # A purge raised the floor: readers below it must get their 410 now.
            or message.get("first", state.first_index) > state.first_index
        ):
            self._spawn(self._refresh(state, None))

    def _on_deleted(self, message: dict[str, Any]) -> None:
        state = self._unheard(message)
        if state is not None:
            self._mark_deleted(state)

    def _mark_deleted(self, state: StreamState) -> None:
        state.deleted = True
        state.wake()

    async def _refresh(self, state: StreamState, tail: StreamTail | None) -> None:
        """Bring the state up to the stored tail: one read for all local readers."""
        async with state.refresh_lock:
            try:
                if tail is None:
                    tail = (
                        await threads.run_in("read", selectors.stream_tails, [state.stream_id])
                    ).get(state.stream_id)
                if tail is None:
                    self._mark_deleted(state)
                    return
                start = max(state.next_index, tail.next_index - state.ring_size)
                while start < tail.next_index:
                    # Pages bounded in chunks and bytes; readers move on after each one.
                    records = await threads.run_in(
                        "read",
                        selectors.chunks_from_index,
                        stream_id=state.stream_id,
                        start=start,
                        end=tail.next_index,
                        limit=state.ring_size,
                    )
                    if not records:
                        break
                    state.extend(records)
                    start = records[-1].index + 1
                    state.wake()
                state.first_index = tail.first_index
                # Closed only once every chunk before the close is known here.
                state.closed = tail.closed and state.next_index >= tail.next_index
            except Exception:
                logger.exception("hub refresh of stream %s failed", state.stream_id)
            finally:
                state.wake()

    # --- readers --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watch(self, stream_id: int) -> AsyncIterator[StreamState]:
        """Hold the hub's subscription to a stream for the life of one reader."""
        await self._ensure_started()
        assert self.channel is not None
        state = self.states.get(stream_id)
        if state is None:
            # Join the group before reading the tail: a commit in between is then either in
            # the tail we read or in a notification we receive. One received while the tail
            # is read has no state to go to: it is noted, and the new state reads the tail
            # again (a stream closed just as its first reader came waited for the re-check).
            self._joining.setdefault(stream_id, False)
            try:
                await self.join(stream_group(stream_id))
                tail = (await threads.run_in("read", selectors.stream_tails, [stream_id])).get(
                    stream_id
                )
            finally:
                heard = self._joining.pop(stream_id, False)
            state = self.states.get(stream_id)
            if state is None:
                if tail is None:
                    await self.leave(stream_group(stream_id))
                    raise StreamGone(stream_id)
                state = StreamState(
                    tail, settings.STREAMDASH_HUB_RING_CHUNKS, settings.STREAMDASH_HUB_RING_BYTES
                )
                self.states[stream_id] = state
                if heard:
                    self._spawn(self._refresh(state, None))
        state.readers += 1
        try:
            yield state
        finally:
            state.readers -= 1
            if state.readers == 0 and self.states.get(stream_id) is state:
                state.pacer.cancel()
                del self.states[stream_id]
                await self.leave(stream_group(stream_id))

    @contextlib.asynccontextmanager
    async def listen(
        self, kind: str, listener: Listener, *, group: str = REVOCATION_GROUP
    ) -> AsyncIterator[None]:
        """Call ``listener`` with every ``kind`` message the hub hears from ``group`` (which
        it joins while anyone listens) until the block ends. Never raises for the layer."""
        await self._ensure_started()
        async with self._membership_lock:
            if self._listened_groups[group] == 0 and group != REVOCATION_GROUP:
                await self.join(group)
            self._listened_groups[group] += 1
        self._listeners.setdefault(kind, set()).add(listener)
        try:
            yield
        finally:
            self._listeners[kind].discard(listener)
            async with self._membership_lock:
                self._listened_groups[group] -= 1
                if self._listened_groups[group] == 0:
                    del self._listened_groups[group]
                    if group != REVOCATION_GROUP:
                        await self.leave(group)

    @property
    def layer_up(self) -> bool:
        """Whether this hub hears other processes' notifications now."""
        return self._layer_ok

    def watch_run(
        self, run_id: str, source: RunSource[S]
    ) -> contextlib.AbstractAsyncContextManager[RunState[S]]:
        """Hold the hub's shared state of a run for the life of one subscriber (see
        ``apps.streams.run_watch``); raises ``RunGone`` if the run does not exist."""
        return self.runs.watch(run_id, source)

    async def read(self, state: StreamState, start: int, limit: int) -> list[ChunkRecord]:
        """Up to ``limit`` chunks from ``start``: from the ring when it holds them, otherwise
        from the database (a reader that fell behind, or one that started far back). A live
        batch is at most ``STREAMDASH_LIVE_PAGE_BYTES``: each reader holds one batch while its
        client takes it (flow control, streamdash/core/flowserver.py), so this bounds the
        memory a slow reader costs."""
        if start >= state.next_index:
            return []
        max_bytes = int(settings.STREAMDASH_LIVE_PAGE_BYTES)
        if start >= state.ring_start:
            metrics.ring_read(hit=True)
            return state.from_ring(start, limit, max_bytes)
        metrics.ring_read(hit=False)
        return await selectors.achunks_from_index(
            stream_id=state.stream_id,
            start=start,
            end=state.next_index,
            limit=limit,
            max_bytes=max_bytes,
            fork_index=state.fork_index,
        )


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def watched_streams() -> int:
    """Streams with live readers in this process (the System page)."""
    return sum(len(hub.states) for hub in list(_hubs.values()))


def get_hub() -> Hub:
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = Hub()
        _hubs[loop] = hub
    return hub
