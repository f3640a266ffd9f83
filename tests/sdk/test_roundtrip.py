"""Typed round trips against the real server: what is appended is read back, equal and typed,
through the async and the sync API."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from streamdash.sdk import ChunkValidationError, StreamDefinition, streams
from tests.sdk.helpers import new_run

pytestmark = pytest.mark.e2e


class ProgressDict(TypedDict):
    step: str
    percent: int


@dataclasses.dataclass
class ProgressData:
    step: str
    percent: int


class ProgressModel(BaseModel):
    step: str
    percent: int
    note: str | None = None


CASES: dict[str, tuple[Any, list[Any]]] = {
    "str": (str, ["hello", "wörld ✓", "", "line\nbreak", "x" * 5000]),
    "typeddict": (ProgressDict, [{"step": "a", "percent": 0}, {"step": "b", "percent": 100}]),
    "dataclass": (ProgressData, [ProgressData("a", 0), ProgressData("b", 50)]),
    "basemodel": (
        ProgressModel,
        [ProgressModel(step="a", percent=1, note="n"), ProgressModel(step="b", percent=2)],
    ),
    "list": (list[int], [[1, 2, 3], [], [4]]),  # array chunks stay one chunk each
    "bytes": (bytes, [b"\x00\xff\x10", b"plain"]),
}


async def _async_roundtrip(definition: StreamDefinition[Any], chunks: list[Any]) -> list[Any]:
    run_id = new_run()
    for chunk in chunks:
        await definition.append(chunk, run_id=run_id)
    await definition.close(run_id=run_id)
    return [chunk async for chunk in definition.read(run_id, timeout=10)]


def _sync_roundtrip(definition: StreamDefinition[Any], chunks: list[Any]) -> list[Any]:
    run_id = new_run()
    assert definition.pipe_sync(chunks, run_id=run_id) == len(chunks)
    definition.close_sync(run_id=run_id)
    return list(definition.read_sync(run_id, timeout=10))


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_roundtrip_typed_chunks(sdk_server: object, stream_id: str, case: str, mode: str) -> None:
    chunk_type, chunks = CASES[case]
    definition = streams.define(stream_id, chunk=chunk_type)
    if mode == "async":
        got = asyncio.run(_async_roundtrip(definition, chunks))
    else:
        got = _sync_roundtrip(definition, chunks)
    assert got == chunks
    assert [type(c) for c in got] == [type(c) for c in chunks]


def test_roundtrip_default_stream(sdk_server: object) -> None:
    async def scenario() -> list[Any]:
        run_id = new_run()
        await streams.append({"any": ["json", 1]}, run_id=run_id)
        await streams.pipe(["a", 2, None], run_id=run_id).wait_until_complete()
        await streams.default.close(run_id=run_id)
        return [c async for c in streams.read(run_id, timeout=10)]

    assert asyncio.run(scenario()) == [{"any": ["json", 1]}, "a", 2, None]


def test_roundtrip_start_index(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    definition.pipe_sync(range(100), run_id=run_id)
    definition.close_sync(run_id=run_id)
    assert list(definition.read_sync(run_id, start_index=95)) == [95, 96, 97, 98, 99]


def test_append_rejects_a_chunk_of_the_wrong_type(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=ProgressModel)
    with pytest.raises(ChunkValidationError):
        definition.append_sync({"step": "a"}, run_id=new_run())  # type: ignore[arg-type]


def test_read_rejects_a_stored_chunk_of_the_wrong_type(sdk_server: object, stream_id: str) -> None:
    run_id = new_run()
    untyped = streams.define(stream_id)
    untyped.pipe_sync([{"step": "ok", "percent": 1}, {"nope": True}], run_id=run_id)
    untyped.close_sync(run_id=run_id)
    typed = streams.define(stream_id, chunk=ProgressDict)
    with pytest.raises(ChunkValidationError) as info:
        list(typed.read_sync(run_id, timeout=5))
    assert (info.value.stream, info.value.index) == (stream_id, 1)


def test_define_registers_the_json_schema(sdk_server: object, stream_id: str) -> None:
    from streamdash.sdk import Client
    from streamdash.sdk._core import Request

    definition = streams.define(stream_id, chunk=ProgressModel, description="progress")
    definition.append_sync(ProgressModel(step="a", percent=1), run_id=new_run())
    with Client() as client:
        saved = client.json(Request("GET", f"/api/v1/definitions/{stream_id}"))
    assert saved["description"] == "progress"
    assert saved["schema"]["properties"]["percent"]["type"] == "integer"
