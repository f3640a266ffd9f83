"""WebSocket consumers: they push rendered htmx out-of-band swaps to dashboard pages.

Chunks come from the per-process hub through ``apps.streams.live.follow`` (no database query
per message or per reader); run changes come from the ``runs`` / ``run.<id>`` channel groups.
Each socket is glue: check the session user, read, render, send. The batching that keeps a
5,000 chunks/s stream from freezing a page lives in ``apps.dashboard.feeds``.

Every read goes through the dashboard's selectors with the session user as viewer: another
project's stream or run closes the socket with 4404, as a missing one does, and the runs socket
hears of every run's changes but reads back, and shows, only the runs the user sees. A user
taken off a project (``apps.projects.services.members_removed``) loses it at once: that
project's stream and run sockets close with 4403, the runs socket drops its rows. So does a
user who loses staff status (``user_status_lowered``) for the projects they are not a member
of; a deactivated user's sockets all close with 4401.

No socket takes a channel-layer channel of its own: Channels subscribes one in Redis before the
handshake, so a Redis outage reset every dashboard socket. Run and access changes come through
the hub (``Hub.listen``), which rides out an outage and rejoins; meanwhile the page shows its
live updates as paused, and when the layer is back every shown row is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string

from apps.dashboard import feeds, selectors
from apps.projects.selectors import Viewer, project_visible_to, viewer_reread
from apps.projects.services import ACCESS_REVOKED
from apps.runs.models import Run
from apps.runs.selectors import run_family
from apps.streams import layer, threads
from apps.streams.hub import get_hub
from apps.streams.live import follow
from apps.streams.notify import RUNS_GROUP, run_group
from streamdash.core.errors import DomainError

# Close codes (4000–4999 are the application's): the page shows why and may not retry.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# Access taken away: the page reconnects once and then gets its 4404.
CLOSE_FORBIDDEN = 4403
LAYER_CHECK_SECONDS = 1.0


def _query(scope: Mapping[str, Any]) -> dict[str, str]:
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {k: v[-1] for k, v in raw.items()}


class _DashboardSocket(AsyncWebsocketConsumer):
    """Refuses anonymous users before the handshake completes; ends when the user loses the
    project it shows; says when live updates are paused; cancels its tasks on close."""

    channel_layer_alias = layer.NO_CHANNEL_LAYER
    tasks: list[asyncio.Task[None]]
    user: Viewer
    project_id: int | None = None  # the one project shown; None: every project the user sees

    async def connect(self) -> None:
        self.tasks = []
        self.exits = contextlib.AsyncExitStack()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        await self.exits.enter_async_context(get_hub().listen(ACCESS_REVOKED, self._revoked))
        await self.start()

    async def start(self) -> None:
        raise NotImplementedError

    def spawn(self, coroutine: Any) -> None:
        self.tasks.append(asyncio.create_task(coroutine))

    def _revoked(self, message: dict[str, Any]) -> None:
        if message["user"] != self.user.pk:
            return
        if message["project"] is None:  # lost staff status, or deactivated
            self.spawn(self._status_lowered())
        elif self.project_id is None:
            self.access_changed()
        elif message["project"] == self.project_id:
            self.spawn(self.close(code=CLOSE_FORBIDDEN))

    async def _status_lowered(self) -> None:
        self.user = await threads.run_in("read", viewer_reread, self.user)
        if not self.user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
        elif self.project_id is None:
            self.access_changed()
        elif not await threads.run_in("read", project_visible_to, self.user, self.project_id):
            await self.close(code=CLOSE_FORBIDDEN)

    def access_changed(self) -> None:
        """The user lost a project; sockets over several projects re-read what they show."""

    def layer_back(self) -> None:
        """Notifications were missed while the layer was away: catch up."""

    async def watch_layer(self) -> None:
        """Tell the page when live updates pause (channel layer away) and resume."""
        up = True
        while True:
            await asyncio.sleep(LAYER_CHECK_SECONDS)
            now_up = layer.health.up and get_hub().layer_up
            if now_up == up:
                continue
            up = now_up
            await self.send(
                text_data=render_to_string(
                    "dashboard/partials.html#live-status", {"paused": not up}
                )
            )
            if up:
                self.layer_back()

    async def disconnect(self, code: int) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        if hasattr(self, "exits"):
            await self.exits.aclose()


class StreamConsumer(_DashboardSocket):
    """``/ws/streams/<id>/?from=N[&speed=instant|1|10|100]``: every chunk from N, in order,
    exactly once per connection; the page reconnects from the index after the last it shows."""

    async def start(self) -> None:
        stream_id = int(self.scope["url_route"]["kwargs"]["stream_id"])
        stream = await threads.run_in("read", selectors.stream_get, stream_id, viewer=self.user)
        if stream is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.project_id = stream.project_id
        query = _query(self.scope)
        try:
            start = max(int(query.get("from", stream.first_index)), 0)
        except ValueError:
            start = stream.first_index
        speed = feeds.replay_speed(query.get("speed", ""))
        await self.accept()
        feed = feeds.ChunkFeed(stream, start, speed)
        self.spawn(feed.read())
        self.spawn(self._send_batches(feed))

    async def _send_batches(self, feed: feeds.ChunkFeed) -> None:
        async for batch in feed.batches():
            await self.send(text_data=feeds.render_chunk_batch(feed, batch))
            if batch.end:
                await self.close(code=1000 if batch.error is None else 4000)
                return


class RunsConsumer(_DashboardSocket):
    """``/ws/runs/?page=home|list&status=…``: changed rows replace themselves; new runs that
    match the page's filters appear on top (first page only). Home also gets live counters."""

    FLUSH_SECONDS = 0.5
    COUNTER_SECONDS = 2.0

    async def start(self) -> None:
        query = _query(self.scope)
        self.page = "home" if query.get("page") == "home" else "list"
        self.filters = selectors.RunFilters.from_query(query)
        self.first_page = not query.get("before")
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        hub = get_hub()
        await self.exits.enter_async_context(
            hub.listen("run.changed", self._run_changed, group=RUNS_GROUP)
        )
        limit = 10 if self.page == "home" else 50
        rows, _ = await threads.run_in(
            "read",
            selectors.runs_with_stats,
            viewer=self.user,
            filters=self.filters,
            before=query.get("before"),
            limit=limit,
        )
        self.known = {run.id for run, _ in rows}
        await self.accept()
        self.spawn(self._flush_loop())
        self.spawn(self.watch_layer())
        if self.page == "home":
            self.spawn(self._counter_loop())

    def _run_changed(self, event: dict[str, Any]) -> None:
        self.dirty.add(event["run"])
        self.wake.set()

    def access_changed(self) -> None:
        self.dirty |= self.known  # rows the user no longer sees are dropped by the flush
        self.wake.set()

    def layer_back(self) -> None:
        self.access_changed()

    async def _flush_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            changed, self.dirty = list(self.dirty), set()
            rows = await threads.run_in("read", selectors.runs_by_ids, changed, viewer=self.user)
            # A shown run that is not read back is gone for this user (deleted, or its project
            # is no longer theirs): its row goes.
            hidden = sorted(self.known.intersection(changed) - {run.id for run, _ in rows})
            self.known.difference_update(hidden)
            html = render_to_string(
                "dashboard/partials.html#run-updates",
                {
                    "updates": self._place(rows),
                    "hidden": hidden,
                    "compact": self.page == "home",
                },
            )
            if html.strip():
                await self.send(text_data=html)
            await asyncio.sleep(self.FLUSH_SECONDS)

    def _place(self, rows: list[tuple[Run, selectors.RunStats]]) -> list[dict[str, Any]]:
        """Replace rows the page shows; put new matching runs on top (oldest of them first,
        so the newest ends up first)."""
        updates = []
        newest = max(self.known, default="")
        for run, stats in sorted(rows, key=lambda row: row[0].id):
            if run.id in self.known:
                updates.append({"run": run, "stats": stats, "new": False})
            elif self.first_page and run.id > newest and self.filters.matches(run):
                self.known.add(run.id)
                updates.append({"run": run, "stats": stats, "new": True})
        return updates

    async def _counter_loop(self) -> None:
        previous: selectors.SiteTotals | None = None
        while True:
            await asyncio.sleep(self.COUNTER_SECONDS)
            totals = await threads.run_in("read", selectors.site_totals, viewer=self.user)
            rate = None
            if previous is not None and totals.sampled_at > previous.sampled_at:
                rate = max(0, totals.chunks - previous.chunks) / (
                    totals.sampled_at - previous.sampled_at
                )
            previous = totals
            html = render_to_string(
                "dashboard/partials.html#counters", {"totals": totals, "rate": rate, "oob": True}
            )
            await self.send(text_data=html)


class RunConsumer(_DashboardSocket):
    """``/ws/runs/<run>/``: the run's header, its related runs and its streams table (counts,
    bytes, rate), re-rendered at most once a second. Counts come from following each open
    stream's tail; the related runs from the run's group (where its children are told) and its
    parent's and root's (their own changes), read again only when one of them changed."""

    TICK_SECONDS = 1.0
    MAX_WATCHED = 50

    async def start(self) -> None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        found = await threads.run_in("read", selectors.run_detail, self.run_id, viewer=self.user)
        if found is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.run, streams = found
        self.project_id = self.run.project_id
        self.stats: dict[int, feeds.StreamStat] = {}
        self.run_dirty = False
        self.family_dirty = False
        self.changed = False
        self.was_active = False
        self.above = {self.run.parent_id, self.run.root_id} - {""}
        for run_id in (self.run_id, *sorted(self.above)):
            await self.exits.enter_async_context(
                get_hub().listen("run.changed", self._run_changed, group=run_group(run_id))
            )
        await self.accept()
        self._adopt(streams)
        self.spawn(self._tick_loop())
        self.spawn(self.watch_layer())

    def _run_changed(self, event: dict[str, Any]) -> None:
        # The hub hands every run.changed of every group it joined to every listener: keep
        # this run's, its parent's and root's, and its children's (a sibling's is not shown).
        run = event.get("run")
        if run == self.run_id:
            self.run_dirty = True
        elif run in self.above or event.get("parent") == self.run_id:
            self.family_dirty = True

    def layer_back(self) -> None:
        self.run_dirty = self.family_dirty = True

    def _adopt(self, streams: list[Any]) -> None:
        for stream in streams:
            stat = self.stats.get(stream.pk)
            if stat is None:
                stat = self.stats[stream.pk] = feeds.StreamStat.of(stream)
                if not stream.closed and len(self.tasks) < self.MAX_WATCHED:
                    self.spawn(self._watch(stat))
            else:
                stat.merge(stream)

    async def _watch(self, stat: feeds.StreamStat) -> None:
        with contextlib.suppress(DomainError):
            heartbeat = settings.STREAMDASH_HEARTBEAT_SECONDS
            async for batch in follow(stat.pk, stat.next_index, heartbeat=heartbeat):
                if batch is not None:
                    stat.observe(batch, time.monotonic())
                    self.changed = True

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.TICK_SECONDS)
            if self.run_dirty:
                self.run_dirty = False
                found = await threads.run_in(
                    "read", selectors.run_detail, self.run_id, viewer=self.user
                )
                if found is None:
                    await self.close(code=CLOSE_NOT_FOUND)
                    return
                self.run, streams = found
                self._adopt(streams)
                self.changed = True
            family = None
            if self.family_dirty:
                self.family_dirty = False
                family = await threads.run_in("read", run_family, run=self.run)
                self.changed = True
            now = time.monotonic()
            active = any(s.rate(now) for s in self.stats.values())
            # Render on a change, and once more after the last activity so rates fall to 0.
            if not (self.changed or active or self.was_active):
                continue
            self.changed, self.was_active = False, active
            html = render_to_string(
                "dashboard/partials.html#run-live",
                {
                    "run": self.run,
                    "family": family,
                    "stats": [s.view(now) for s in self.stats.values()],
                },
            )
            await self.send(text_data=html)
