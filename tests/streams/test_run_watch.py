"""The hub's run watching in-process: one load per change per process however many
subscribers, bursts folded, lost notifications recovered by the re-check, and the group
subscription released with the last subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Hashable, Sequence

import pytest
from asgiref.sync import sync_to_async

from apps.streams import notify
from apps.streams.hub import get_hub
from apps.streams.notify import run_group
from apps.streams.run_watch import RunGone, RunSource, RunState

SUBSCRIBERS = 10


class FakeRuns:
    """Runs as a dict, with counters: the "database" the source reads."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.loads = 0
        self.stamp_calls = 0
        self.gate = threading.Event()  # cleared: loads wait (a slow database)
        self.gate.set()

    def load(self, run_id: str) -> tuple[Hashable, str] | None:
        self.loads += 1
        self.gate.wait(5)
        status = self.rows.get(run_id)
        return (status, status) if status is not None else None

    def stamps(self, run_ids: Sequence[str]) -> dict[str, Hashable]:
        self.stamp_calls += 1
        return {r: self.rows[r] for r in run_ids if r in self.rows}

    def source(self) -> RunSource[str]:
        return RunSource(load=self.load, stamps=self.stamps)


async def _subscriber(
    run_id: str, source: RunSource[str], want: str, ready: asyncio.Event | None = None
) -> str | None:
    async with get_hub().watch_run(run_id, source) as state:
        if ready is not None:
            ready.set()
        while state.snapshot != want:
            await asyncio.wait_for(state.changed(state.version), 5)
        return state.snapshot


async def _start(runs: FakeRuns, source: RunSource[str], want: str) -> list[asyncio.Task]:
    events = [asyncio.Event() for _ in range(SUBSCRIBERS)]
    tasks = [asyncio.create_task(_subscriber("run_1", source, want, e)) for e in events]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 5)
    return tasks


async def _run_changed(run_id: str) -> None:
    await sync_to_async(notify.run_changed)(run_id=run_id, status="any")


@pytest.fixture
def no_recheck(settings) -> None:
    """Counts below are exact: keep the periodic re-check out of them."""
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60


async def test_run_change_is_loaded_once_for_all_local_subscribers(no_recheck):
    runs = FakeRuns()
    runs.rows["run_1"] = "queued"
    source = runs.source()
    subscribers = await _start(runs, source, "completed")
    assert runs.loads == 1  # the first subscriber's load; the other nine share it
    runs.rows["run_1"] = "completed"
    await _run_changed("run_1")
    assert await asyncio.wait_for(asyncio.gather(*subscribers), 5) == ["completed"] * SUBSCRIBERS
    # Before the hub, each subscriber loaded on every change: 10 + 10 loads here.
    assert runs.loads == 2


async def _until(condition, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_changes_during_a_load_are_folded_into_one_more_load(no_recheck):
    runs = FakeRuns()
    runs.rows["run_1"] = "0"
    source = runs.source()
    subscribers = await _start(runs, source, "5")
    state = get_hub().runs.runs["run_1"][source]
    runs.gate.clear()
    runs.rows["run_1"] = "1"
    await _run_changed("run_1")
    await _until(lambda: runs.loads == 2)  # this reload now waits for the gate
    for n in range(2, 6):
        runs.rows["run_1"] = str(n)
        await _run_changed("run_1")
    await _until(lambda: state.dirty)
    await asyncio.sleep(0.1)  # let the other notifications arrive too
    runs.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*subscribers), 5) == ["5"] * SUBSCRIBERS
    await asyncio.sleep(0.1)
    assert runs.loads == 3  # the first, the one held up, one for all that came during it


async def test_lost_notification_is_recovered_by_the_recheck(settings, monkeypatch):
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 0.2
    runs = FakeRuns()
    runs.rows["run_1"] = "executing"
    source = runs.source()
    subscribers = await _start(runs, source, "failed")
    monkeypatch.setattr(notify, "_send", lambda group, message: None)  # every message lost
    runs.rows["run_1"] = "failed"
    await _run_changed("run_1")
    assert await asyncio.wait_for(asyncio.gather(*subscribers), 5) == ["failed"] * SUBSCRIBERS
    assert runs.loads == 2
    assert runs.stamp_calls >= 1


async def test_group_is_joined_by_the_first_subscriber_and_left_by_the_last(monkeypatch):
    runs = FakeRuns()
    runs.rows["run_1"] = "queued"
    source = runs.source()
    hub = get_hub()
    await hub._ensure_started()
    calls: list[tuple[str, str]] = []

    def spy(name: str):
        original = getattr(hub.layer, name)

        def recorded(group: str, channel: str):
            calls.append((name, group))
            return original(group, channel)

        return recorded

    for name in ("group_add", "group_discard"):
        monkeypatch.setattr(hub.layer, name, spy(name))
    subscribers = await _start(runs, source, "never")
    assert calls == [("group_add", run_group("run_1"))]
    for task in subscribers[:-1]:
        task.cancel()
    await asyncio.sleep(0.05)
    assert calls == [("group_add", run_group("run_1"))]
    subscribers[-1].cancel()
    for task in subscribers:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert calls == [("group_add", run_group("run_1")), ("group_discard", run_group("run_1"))]
    assert "run_1" not in hub.runs.runs


async def test_missing_run_raises_and_a_deleted_run_ends_its_state():
    runs = FakeRuns()
    source = runs.source()
    with pytest.raises(RunGone):
        async with get_hub().watch_run("run_1", source):
            pass
    runs.rows["run_1"] = "completed"
    state: RunState[str]
    async with get_hub().watch_run("run_1", source) as state:
        version = state.version
        del runs.rows["run_1"]
        await _run_changed("run_1")
        await asyncio.wait_for(state.changed(version), 5)
        assert state.snapshot is None
