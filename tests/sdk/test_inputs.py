"""Input streams from the SDK, against the real server: send (idempotent, typed, refused once
the run has finished) and, inside a task, once / wait / on / peek, async and sync."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from streamdash.sdk import (
    ChunkValidationError,
    RunFinishedError,
    RunResult,
    Task,
    current_run,
    runs,
    streams,
    task,
)
from streamdash.sdk._core import json_request
from streamdash.sdk._defaults import default_async_client

pytestmark = pytest.mark.e2e


class Approval(BaseModel):
    approved: bool
    by: str


approval = streams.input("approval", chunk=Approval)
stop = streams.input("stop", chunk=bool)
notes = streams.input("notes", chunk=int)
tokens = streams.define("tokens", chunk=str)


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Poll ``check`` (bounded in time) — for state another task changes."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def execute(fn: Task[Any, Any], run_id: str) -> asyncio.Task[RunResult[Any]]:
    """Execute a triggered run here, in the background, as a worker would."""
    client = default_async_client()
    await client.request(json_request("PATCH", f"/api/v1/runs/{run_id}", {"status": "executing"}))
    return asyncio.create_task(fn.execute(run_id, None, client=client))


async def start(fn: Task[Any, Any]) -> tuple[str, asyncio.Task[RunResult[Any]]]:
    run_id = (await fn.trigger(read_token=False)).id
    return run_id, await execute(fn, run_id)


async def waiting_for(run_id: str) -> str | None:
    return (await runs.retrieve(run_id)).waiting_for


# --- once / wait ------------------------------------------------------------------------------


@task("inputs.twice")
async def twice() -> list[str]:
    first = await approval.once(timeout=20)
    second = await approval.once(timeout=20)
    assert isinstance(first, Approval)
    assert isinstance(second, Approval)
    return [first.by, second.by]


async def test_inputs_once_gets_values_sent_before_and_after_it_listens(
    sdk_server: object,
) -> None:
    run_id = (await twice.trigger(read_token=False)).id
    await approval.send(run_id, Approval(approved=True, by="early"))  # the run is only queued
    running = await execute(twice, run_id)
    await asyncio.sleep(0.3)
    await approval.send(run_id, Approval(approved=False, by="late"))
    assert (await running).output == ["early", "late"]


@task("inputs.timeout")
async def times_out() -> str:
    context = current_run()
    assert context is not None
    try:
        await approval.wait(timeout=0.5)
    except TimeoutError:
        return f"timed out, waiting_for={await waiting_for(context.run_id)}"
    return "got a value"


async def test_inputs_once_and_wait_raise_timeout_error_and_clear_the_mark(
    sdk_server: object,
) -> None:
    run_id, running = await start(times_out)
    assert (await running).output == "timed out, waiting_for=None"
    assert await waiting_for(run_id) is None


@task("inputs.wait")
async def waits() -> bool:
    return (await approval.wait(timeout=30)).approved


async def test_inputs_wait_shows_the_run_waiting_until_the_value_arrives(
    sdk_server: object,
) -> None:
    run_id, running = await start(waits)
    deadline = time.monotonic() + 15
    while await waiting_for(run_id) != "approval":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await approval.send(run_id, Approval(approved=True, by="ops"))
    assert (await running).output is True
    run = await runs.retrieve(run_id)
    assert (run.status, run.waiting_for) == ("completed", None)


# --- on / peek --------------------------------------------------------------------------------

_unsubscribed: dict[str, asyncio.Event] = {}


@task("inputs.on")
async def listens() -> dict[str, list[int]]:
    context = current_run()
    assert context is not None
    got_sync: list[int] = []
    got_async: list[int] = []

    async def record(value: int) -> None:
        await asyncio.sleep(0)
        got_async.append(value)

    subscription = notes.on(got_sync.append)
    notes.on(record)
    await until(lambda: len(got_async) >= 3 and len(got_sync) >= 3)
    subscription.unsubscribe()
    _unsubscribed[context.run_id].set()
    await until(lambda: len(got_async) >= 4)
    await asyncio.sleep(0.2)  # a late delivery to the stopped handler would show now
    return {"sync": got_sync, "async": got_async}


async def test_inputs_on_calls_sync_and_async_handlers_until_unsubscribed(
    sdk_server: object,
) -> None:
    handle = await listens.trigger(read_token=False)
    _unsubscribed[handle.id] = asyncio.Event()
    await notes.send(handle.id, 1)  # before the task listens: still delivered
    running = await execute(listens, handle.id)
    await notes.send(handle.id, 2)
    await notes.send(handle.id, 3)
    await asyncio.wait_for(_unsubscribed[handle.id].wait(), 15)
    await notes.send(handle.id, 4)
    assert (await running).output == {"sync": [1, 2, 3], "async": [1, 2, 3, 4]}


_peeked: dict[str, asyncio.Event] = {}


@task("inputs.peek")
async def peeks() -> list[int | None]:
    context = current_run()
    assert context is not None
    first = notes.peek()
    _peeked[context.run_id].set()
    await until(lambda: notes.peek() == 8)
    return [first, notes.peek()]


async def test_inputs_peek_is_none_then_the_latest_value(sdk_server: object) -> None:
    handle = await peeks.trigger(read_token=False)
    _peeked[handle.id] = asyncio.Event()
    running = await execute(peeks, handle.id)
    await asyncio.wait_for(_peeked[handle.id].wait(), 15)
    for value in (7, 8):
        await notes.send(handle.id, value)
    assert (await running).output == [None, 8]


# --- sending ----------------------------------------------------------------------------------


@task("inputs.idle")
async def idle() -> None:
    return None


async def test_inputs_send_is_idempotent_and_refused_after_the_run_finished(
    sdk_server: object,
) -> None:
    run_id, running = await start(idle)
    await running
    with pytest.raises(RunFinishedError):
        await approval.send(run_id, Approval(approved=True, by="late"))

    handle = await idle.trigger(read_token=False)
    for _ in range(2):
        await notes.send(handle.id, 5, idempotency_key="click-1")
    await asyncio.to_thread(notes.send_sync, handle.id, 6, idempotency_key="click-2")
    await asyncio.to_thread(notes.send_sync, handle.id, 6, idempotency_key="click-2")
    stored = [v async for v in streams.read(handle.id, key="input:notes", timeout=1)]
    assert stored == [5, 6]


async def test_inputs_values_are_typed_on_both_sides(sdk_server: object, server_key: str) -> None:
    bad: Any = {"approved": "perhaps"}
    with pytest.raises(ChunkValidationError):
        await approval.send("run_01JZZZZZZZZZZZZZZZZZZZZZZZ", bad)
    run_id, running = await start(twice)
    # A value that bypassed the SDK's check (no server validation asked): the task's decode
    # refuses it with the stream's name and index.
    async with httpx.AsyncClient(
        base_url=str(default_async_client().url), headers={"Authorization": f"Bearer {server_key}"}
    ) as raw:
        response = await raw.post(
            f"/api/v1/runs/{run_id}/inputs/approval",
            content=json.dumps([{"approved": "perhaps"}]),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 204
    with pytest.raises(ChunkValidationError, match="Chunk 0 of stream 'input:approval'"):
        await running


# --- the stop button: an input ends a running pipe cleanly --------------------------------------


async def llm(stop_event: asyncio.Event) -> AsyncIterator[str]:
    """An endless token source that ends when ``stop_event`` is set (pipe's cancel= stands in)."""
    n = 0
    while not stop_event.is_set():
        yield f"t{n} "
        n += 1
        await asyncio.sleep(0.02)


@task("inputs.stop")
async def generate() -> str:
    stop_event = asyncio.Event()
    stop.on(lambda _: stop_event.set())
    await tokens.pipe(llm(stop_event)).wait_until_complete()
    return "stopped"


async def test_inputs_stop_ends_a_running_pipe(sdk_server: object) -> None:
    run_id, running = await start(generate)
    seen: list[str] = []
    async for token in tokens.read(run_id, timeout=15):
        seen.append(token)
        if len(seen) == 5:
            await stop.send(run_id, True)
    assert (await running).output == "stopped"
    assert seen[:5] == ["t0 ", "t1 ", "t2 ", "t3 ", "t4 "]  # the read ended at the close
    assert (await runs.retrieve(run_id)).status == "completed"


# --- sync tasks -------------------------------------------------------------------------------

_sync_ready: dict[str, threading.Event] = {}


@task("inputs.sync")
def sync_waits(_: None) -> list[object]:  # with a parameter, a sync task runs on a thread
    context = current_run()
    assert context is not None
    _sync_ready[context.run_id].set()
    first = approval.wait_sync(timeout=20)
    try:
        notes.once_sync(timeout=0.5)
    except TimeoutError:
        timed_out = True
    return [first.by, timed_out, approval.peek() is not None]


async def test_inputs_sync_task_mirrors(sdk_server: object) -> None:
    handle = await sync_waits.trigger(read_token=False)
    _sync_ready[handle.id] = threading.Event()
    running = await execute(sync_waits, handle.id)
    assert await asyncio.to_thread(_sync_ready[handle.id].wait, 15)
    await asyncio.to_thread(approval.send_sync, handle.id, Approval(approved=True, by="sync"))
    assert (await running).output == ["sync", True, True]
