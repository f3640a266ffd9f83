"""Tasks for the worker tests (imported by ``python -m streamdash.sdk worker --tasks ...``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from pydantic import BaseModel
from typing_extensions import TypedDict

from streamdash.sdk import metadata, streams, task


class Prompt(BaseModel):
    text: str
    tokens: int = 20


class Progress(TypedDict):
    step: str
    percent: int


ai = streams.define("ai", chunk=str, description="LLM tokens")
progress = streams.define("progress", chunk=Progress)


async def fake_llm(prompt: Prompt) -> AsyncIterator[str]:
    for n in range(prompt.tokens):
        if n % 5 == 0:
            await asyncio.sleep(0.001)
        yield f"{prompt.text}-{n}"


def numbers(count: int) -> Iterator[int]:
    yield from range(count)


@task("generate-content")
async def generate(payload: Prompt) -> dict[str, object]:
    await progress.append({"step": "start", "percent": 0})
    piped = ai.pipe(fake_llm(payload))
    seen = [chunk async for chunk in piped.stream]
    await piped.wait_until_complete()
    await progress.append({"step": "done", "percent": 100})
    return {"ok": True, "tokens": len(seen)}


@task("explode")
async def explode(payload: Prompt) -> None:
    await progress.append({"step": "start", "percent": 0})
    raise RuntimeError(f"boom: {payload.text}")


@task("v1-compat")
async def v1_compat(count: int) -> int:
    total = 0
    async for value in metadata.stream("numbers", numbers(count)):
        total += value
    return total


@task("sync-task")
def sync_task(count: int) -> int:
    progress.pipe_sync({"step": f"s{n}", "percent": n} for n in range(count))
    return count
