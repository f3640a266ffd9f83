"""``fork``: "regenerate from here" on a run's stream, through the SDK against the real server."""

from __future__ import annotations

import pytest

from streamdash.sdk import NotFoundError, streams
from tests.sdk.helpers import new_run

pytestmark = pytest.mark.e2e


async def test_fork_into_a_new_run_reads_the_prefix_then_its_own_chunks(sdk_server, stream_id):
    answer = streams.define(stream_id, chunk=str)
    first = new_run()
    for part in ["Hel", "lo", " world"]:
        await answer.append(part, run_id=first)
    second = new_run()
    retry = await answer.fork(first, 2, stream_id, into_run=second)
    assert retry.id == stream_id
    await answer.fork(first, 2, stream_id, into_run=second)  # again: a no-op
    await retry.append(" there", run_id=second)
    await retry.close(run_id=second)
    assert [c async for c in retry.read(second, timeout=10)] == ["Hel", "lo", " there"]
    await answer.close(run_id=first)
    assert [c async for c in answer.read(first, timeout=10)] == ["Hel", "lo", " world"]


def test_fork_sync_within_the_run_under_a_new_key(sdk_server, stream_id):
    answer = streams.define(stream_id, chunk=int)
    run_id = new_run()
    answer.pipe_sync([1, 2, 3], run_id=run_id)
    retry = answer.fork_sync(run_id, 1, f"{stream_id}-retry")
    retry.pipe_sync([20], run_id=run_id)
    retry.close_sync(run_id=run_id)
    assert list(retry.read_sync(run_id, timeout=10)) == [1, 20]


def test_fork_of_a_missing_stream_raises_not_found(sdk_server, stream_id):
    run_id = new_run()
    with pytest.raises(NotFoundError):
        streams.fork_sync(run_id, 0, "copy", key=stream_id)
