"""Parent and root runs: a run triggered inside a task records its parent and root, and a task
writes to its parent's or root's streams with ``target=`` (within its own project only)."""

from __future__ import annotations

import uuid

import pytest

from streamdash.sdk import (
    AsyncClient,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    StreamDefinition,
    auth,
    runs,
    streams,
    task,
)
from tests.sdk.helpers import new_run
from tests.server import Server

pytestmark = pytest.mark.e2e


def _id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def test_children_write_to_parent_and_root(sdk_server: object) -> None:
    chat = streams.define(_id("chat"), chunk=str)
    queued: list[str] = []

    @task(_id("leaf"))
    async def leaf() -> str:
        await chat.pipe(["to-root-1", "to-root-2"], target="root").wait_until_complete()
        await chat.append("to-parent", target="parent")
        queued.append((await later.trigger()).id)  # triggered in a task: a child of this run
        return "leaf"

    @task(_id("middle"))
    async def middle() -> str:
        return (await leaf.run_local()).id

    @task(_id("top"))
    async def top() -> str:
        with pytest.raises(ConfigurationError, match="has no parent"):
            await chat.append("nowhere", target="parent")
        return (await middle.run_local()).id

    @task(_id("later"))
    async def later() -> None: ...

    top_run = await top.run_local()
    middle_run = await runs.retrieve(top_run.output)
    leaf_run = await runs.retrieve(middle_run.output)
    later_run = await runs.retrieve(queued[0])
    assert (await runs.retrieve(top_run.id)).parent_id is None
    assert (middle_run.parent_id, middle_run.root_id) == (top_run.id, top_run.id)
    assert (leaf_run.parent_id, leaf_run.root_id) == (middle_run.id, top_run.id)
    assert (later_run.parent_id, later_run.root_id) == (leaf_run.id, top_run.id)
    # Every run is final, so every stream is closed: the reads end by themselves.
    assert [c async for c in chat.read(top_run.id)] == ["to-root-1", "to-root-2"]
    assert [c async for c in chat.read(middle_run.id)] == ["to-parent"]
    await runs.cancel(later_run.id)


async def test_target_names_a_run_of_the_same_project_only(
    sdk_server: Server, stream_id: str
) -> None:
    definition = streams.define(stream_id, chunk=int)
    with pytest.raises(ConfigurationError, match="relative to a task"):
        definition.pipe([1], target="root")
    async with AsyncClient(api_key=sdk_server.create_project()) as theirs:
        other = await task("elsewhere")(lambda: None).trigger(client=theirs)
    with pytest.raises(NotFoundError):  # another project's run does not exist for this key
        await definition.pipe([1, 2], target=other.id).wait_until_complete(timeout=10)
    mine, parent = new_run(), new_run()
    token = await auth.create_public_token(scopes=[f"write:runs:{mine}"], ttl=60)
    # A token cannot register definitions (a project-wide write): this one is not registered.
    unregistered = StreamDefinition(stream_id, chunk=int, register=False)
    async with AsyncClient(api_key=token) as scoped:
        await unregistered.append(1, target=mine, client=scoped)
        with pytest.raises(PermissionDeniedError):
            await unregistered.append(2, target=parent, client=scoped)
