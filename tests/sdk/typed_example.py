"""A typed usage example, checked by ``mypy --strict`` (tests/sdk/test_typing.py): ``read``
yields the defined chunk type, and the task decorator keeps the payload and output types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import assert_type

from pydantic import BaseModel
from typing_extensions import TypedDict

from streamdash.sdk import (
    InputStream,
    Pipe,
    RunHandle,
    RunResult,
    StreamDefinition,
    Task,
    streams,
    task,
)


class Prompt(BaseModel):
    text: str


class UIMessageChunk(BaseModel):
    type: str
    delta: str = ""


class Progress(TypedDict):
    step: str
    percent: int


ai = streams.define("ai", chunk=UIMessageChunk)
progress = streams.define("progress", chunk=Progress)
log = streams.define("log", chunk=str)
assert_type(ai, StreamDefinition[UIMessageChunk])
AIChunk = ai.chunk_type


async def llm_stream() -> AsyncIterator[UIMessageChunk]:
    yield UIMessageChunk(type="text-delta", delta="hi")


@task("generate-content")
async def generate(payload: Prompt) -> dict[str, bool]:
    await progress.append({"step": "start", "percent": 0})
    piped = ai.pipe(llm_stream())
    assert_type(piped, Pipe[UIMessageChunk])
    async for local in piped.stream:
        assert_type(local, UIMessageChunk)
    await piped.wait_until_complete()
    return {"ok": True}


assert_type(generate, Task[Prompt, dict[str, bool]])


async def backend(cancel: asyncio.Event) -> None:
    handle = await generate.trigger(Prompt(text="hi"))
    assert_type(handle, RunHandle)
    async for chunk in ai.read(handle.id, start_index=0, timeout=300, cancel=cancel):
        assert_type(chunk, UIMessageChunk)
        print(chunk.delta)
    for step in progress.read_sync(handle.id):
        assert_type(step, Progress)
        print(step["percent"])
    for line in log.read_sync(handle.id):
        assert_type(line, str)
    result = await generate.run_local(Prompt(text="local"))
    assert_type(result, RunResult[dict[str, bool]])


class Approval(BaseModel):
    approved: bool


approval = streams.input("approval", chunk=Approval)
assert_type(approval, InputStream[Approval])


@task("approve")
async def approve(payload: Prompt) -> bool:
    assert_type(await approval.once(timeout=60), Approval)
    assert_type(await approval.wait(timeout=60), Approval)
    assert_type(approval.peek(), Approval | None)
    with approval.on(lambda value: print(value.approved)):
        pass
    return (await approval.wait()).approved


async def sender(run_id: str) -> None:
    await approval.send(run_id, Approval(approved=True))
    approval.send_sync(run_id, Approval(approved=False), idempotency_key="click-1")
