"""Tasks and runs: run_local bookkeeping, worker processes running triggered runs, the run
subscription with streams, public tokens and the v1 metadata.stream."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from streamdash.sdk import (
    AsyncClient,
    PermissionDeniedError,
    RunPart,
    StreamPart,
    Worker,
    WriterOptions,
    auth,
    runs,
    streams,
    task,
)
from tests.sdk import sample_tasks
from tests.sdk.sample_tasks import Prompt, ai, progress

pytestmark = pytest.mark.e2e


async def test_run_local_completes_after_its_pipes(sdk_server: object) -> None:
    result = await sample_tasks.generate.run_local(Prompt(text="hi", tokens=30))
    assert result.output == {"ok": True, "tokens": 30}
    run = await runs.retrieve(result.id)
    assert (run.status, run.output) == ("completed", {"ok": True, "tokens": 30})
    # The final status closed the streams, so reads end by themselves.
    assert [c async for c in ai.read(result.id)] == [f"hi-{n}" for n in range(30)]
    assert [p["percent"] async for p in progress.read(result.id)] == [0, 100]


async def test_run_local_failure_marks_the_run_failed(sdk_server: object) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await sample_tasks.explode.run_local(Prompt(text="x"))
    failed = [r async for r in _latest_runs("explode")]
    assert failed[0].status == "failed"
    assert failed[0].error == {"type": "RuntimeError", "message": "boom: x"}


async def _latest_runs(task_id: str):  # type: ignore[no-untyped-def]
    from streamdash.sdk._core import Request
    from streamdash.sdk._runs import Run

    async with AsyncClient() as client:
        page = await client.json(Request("GET", "/api/v1/runs", params={"task_id": task_id}))
    for item in page["data"]:
        yield Run.model_validate(item)


async def test_metadata_stream_v1_tees_into_the_run(sdk_server: object) -> None:
    result = await sample_tasks.v1_compat.run_local(10)
    assert result.output == sum(range(10))
    assert [n async for n in streams.read(result.id, key="numbers")] == list(range(10))


async def test_sync_task_pipes_synchronously(sdk_server: object) -> None:
    result = await sample_tasks.sync_task.run_local(5)
    assert [p["step"] async for p in progress.read(result.id)] == [f"s{n}" for n in range(5)]


async def test_sync_task_without_payload_leaves_the_loop_to_other_runs(
    sdk_server: object,
) -> None:
    """A sync task blocks in a thread: the worker's other run (and its heartbeat) goes on."""
    suffix = uuid.uuid4().hex[:6]
    started, released = threading.Event(), threading.Event()

    @task(f"blocking-{suffix}")
    def blocking() -> bool:
        started.set()
        return released.wait(timeout=10)  # False if the releaser never got the loop

    @task(f"releaser-{suffix}")
    async def releaser() -> None:
        if await asyncio.to_thread(started.wait, 10):
            released.set()  # back on the loop: only if the blocking run left it free

    handle = await blocking.trigger()
    await releaser.trigger()
    async with asyncio.timeout(30):
        await Worker([blocking, releaser], concurrency=2, poll_interval=0.05).run(max_runs=2)
    run = await runs.retrieve(handle.id)
    assert (run.status, run.output) == ("completed", True)


def test_workers_run_triggered_runs_each_once(sdk_server: object, sdk_env: dict[str, str]) -> None:
    handles = [
        sample_tasks.generate.trigger_sync(Prompt(text=f"w{n}", tokens=10)) for n in range(4)
    ]
    failing = sample_tasks.explode.trigger_sync(Prompt(text="in worker"))
    command = [
        sys.executable, "-m", "streamdash.sdk", "worker", "--tasks", "tests.sdk.sample_tasks",
        "--idle-exit", "1.5", "--poll-interval", "0.1", "--concurrency", "2",
    ]  # fmt: skip
    workers = [
        subprocess.Popen(command, env=sdk_env, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    logs = [w.communicate(timeout=40)[1] for w in workers]
    started = sum(log.count(" started") for log in logs)
    assert started == 5, logs
    for n, handle in enumerate(handles):
        run = runs.retrieve_sync(handle.id)
        assert (run.status, run.output) == ("completed", {"ok": True, "tokens": 10})
        assert list(ai.read_sync(handle.id)) == [f"w{n}-{i}" for i in range(10)]
    assert runs.retrieve_sync(failing.id).status == "failed"


async def test_subscribe_with_streams_sees_the_run_and_typed_chunks(sdk_server: object) -> None:
    task_id = f"sub-{uuid.uuid4().hex[:6]}"

    @task(task_id)
    async def job(payload: Prompt) -> str:
        await progress.append({"step": "start", "percent": 0})
        await ai.pipe(sample_tasks.fake_llm(payload)).wait_until_complete()
        return "done"

    handle = await job.trigger(Prompt(text="s", tokens=12))
    worker = asyncio.create_task(Worker([job], poll_interval=0.05).run(max_runs=1))
    statuses: list[str] = []
    chunks: dict[str, list[object]] = {}
    async with asyncio.timeout(20):
        async for part in runs.subscribe(handle.id).with_streams():
            if isinstance(part, RunPart):
                statuses.append(part.run.status)
            else:
                assert isinstance(part, StreamPart)
                chunks.setdefault(part.type, []).append(part.chunk)
    await worker
    assert statuses[-1] == "completed"
    assert chunks["ai"] == [f"s-{n}" for n in range(12)]
    assert chunks["progress"] == [{"step": "start", "percent": 0}]


async def test_public_token_reads_only_its_run(sdk_server: object) -> None:
    result = await sample_tasks.generate.run_local(Prompt(text="t", tokens=3))
    other = await sample_tasks.generate.run_local(Prompt(text="o", tokens=3))
    token = await auth.create_public_token(scopes=[f"read:runs:{result.id}"], ttl=60)
    async with AsyncClient(api_key=token) as browser:
        assert [c async for c in ai.read(result.id, client=browser)] == ["t-0", "t-1", "t-2"]
        with pytest.raises(PermissionDeniedError):
            [c async for c in ai.read(other.id, client=browser)]


def test_trigger_returns_a_read_token_for_the_run(sdk_server: object) -> None:
    from streamdash.sdk import Client

    handle = sample_tasks.generate.trigger_sync(Prompt(text="r"), tags=["tok"])
    assert handle.read_token
    began = time.monotonic()
    with Client(api_key=handle.read_token) as browser:
        assert runs.retrieve_sync(handle.id, client=browser).status == "queued"
    assert time.monotonic() - began < 5
    runs_cancel = Client()
    with runs_cancel:
        from streamdash.sdk._core import json_request

        runs_cancel.request(
            json_request("PATCH", f"/api/v1/runs/{handle.id}", {"status": "canceled"})
        )


async def test_v1_pipes_past_the_timeout_complete_the_run(
    sdk_server: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The v1 seed: a task waits for its streams (60 s, here 1 s), then the run is complete,
    its streams closed, a warning counts what was not sent, and nothing is left to log
    "Task exception was never retrieved" later."""
    stuck = streams.define(f"stuck-{uuid.uuid4().hex[:6]}", chunk=int)
    sent = streams.define(f"sent-{uuid.uuid4().hex[:6]}", chunk=int)

    async def hangs_after(count: int) -> AsyncIterator[int]:
        for n in range(count):
            yield n
        await asyncio.Event().wait()

    @task(f"v1-timeout-{uuid.uuid4().hex[:6]}", pipe_timeout=1.0)
    async def slow_streams() -> str:
        stuck.pipe(hangs_after(5), options=WriterOptions(linger=30))  # batches never sent
        sent.pipe(hangs_after(3))  # sent at once, then the source hangs
        return "done"

    caplog.set_level(logging.WARNING)
    async with asyncio.timeout(20):
        result = await slow_streams.run_local()
        run = await runs.retrieve(result.id)
        assert (run.status, run.output) == ("completed", "done")
        # Closed with the run: the reads end by themselves, with what was delivered.
        assert [n async for n in stuck.read(result.id)] == []
        assert [n async for n in sent.read(result.id)] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("5 chunks were not delivered" in w and result.id in w for w in warnings), warnings
    gc.collect()
    await asyncio.sleep(0.1)
    assert "never retrieved" not in caplog.text
