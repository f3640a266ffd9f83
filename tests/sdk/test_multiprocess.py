"""Several processes writing one stream: each producer's chunks are stored once, in its order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamdash.sdk import streams
from tests.sdk.helpers import finish_run, new_run

pytestmark = pytest.mark.e2e

PER_PROCESS = 500
WRITER = f"""
import asyncio, sys
from streamdash.sdk import WriterOptions, streams

shared = streams.define(sys.argv[1], chunk=dict[str, int])

async def source(p):
    for n in range({PER_PROCESS}):
        if n % 25 == 0:
            await asyncio.sleep(0.001)
        yield {{"p": p, "n": n}}

async def main():
    pipe = shared.pipe(source(int(sys.argv[3])), run_id=sys.argv[2],
                       options=WriterOptions(max_batch_chunks=20))
    print(await pipe.wait_until_complete(timeout=30))

asyncio.run(main())
"""


def test_two_processes_pipe_into_one_stream(
    sdk_server: object, sdk_env: dict[str, str], stream_id: str
) -> None:
    run_id = new_run()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, stream_id, run_id, str(p)],
            env=sdk_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (1, 2)
    ]
    outputs = [w.communicate(timeout=40) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [str(PER_PROCESS)] * 2
    finish_run(run_id)
    got = list(streams.define(stream_id, chunk=dict[str, int]).read_sync(run_id, timeout=10))
    assert len(got) == 2 * PER_PROCESS
    for p in (1, 2):
        assert [c["n"] for c in got if c["p"] == p] == list(range(PER_PROCESS))
    # The two processes really interleaved (they wrote at the same time).
    firsts = [c["p"] for c in got[:PER_PROCESS]]
    assert set(firsts) == {1, 2}
