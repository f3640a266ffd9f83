"""``streambench idle``: what live readers cost the server in memory when they do nothing.

Two kinds of reader, both held open on raw loopback sockets by this process:

- **idle**: ``--readers`` SSE readers (200 by default) of a stream that is caught up and quiet,
  the common case of a dashboard or a chat waiting for the next token;
- **non-reading**: 20 SSE readers of a ``--mib`` MiB stream (40 by default) that send their
  request and never read a byte, each with a small receive buffer. Without flow control the
  server would queue the whole stream for each of them (issue 11: three such readers of a
  40 MiB stream once added 242 MiB, still held after they left).

The server's resident memory (``/proc/<pid>/status`` VmRSS, sampled every 20 ms) is reported
before the readers, with the idle readers open (and per reader), at its peak while the
non-reading readers hang, and ``SETTLE_SECONDS`` after everyone closed; the baseline is the
same server's RSS before the readers, in the same run. The server runs with
``STREAMDASH_SEND_STALL_SECONDS`` = ``STALL_SECONDS`` so the non-reading readers are cut off
within the run: the report counts how many the server closed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
from django.db import connection

from apps.bench import fixtures, wire
from apps.bench.big import CHUNK_BYTES, chunk_sizes
from apps.bench.proc import MIB, RssSampler, rss_bytes, threads
from apps.bench.progress import warn
from apps.bench.server import BENCH_ENV, BenchServer
from apps.projects.services import project_create

NON_READING = 20
STALL_SECONDS = 5.0
SETTLE_SECONDS = 5.0
_SMALL_BUFFER = 4096


def _open(port: int, path: str, key: str, *, small_buffer: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SMALL_BUFFER)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    query = {"offset": "-1", "live": "sse"}
    sock.sendall(
        wire.get_request(f"127.0.0.1:{port}", path, query, {"Authorization": f"Bearer {key}"})
    )
    return sock


def _await_head(sock: socket.socket) -> None:
    head = wire.ResponseHead()
    while not head.done:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed an idle reader before answering")
        head.feed(data)
    if head.status != 200:
        raise RuntimeError(f"an idle reader was answered {head.status}")


def _write_big(client: httpx.Client, path: str, mib: int) -> None:
    body = json.dumps("x" * (CHUNK_BYTES - 2)).encode()
    for size in chunk_sizes(mib * MIB):
        client.post(path, content=body[: size - 1] + b'"', headers=fixtures.JSON).raise_for_status()


def _server_closed(server: BenchServer, sockets: list[socket.socket]) -> int:
    """How many of our connections the server no longer holds."""
    return sum(server.worker_of(s.getsockname()[1]) is None for s in sockets)


def run(readers: int, mib: int, say: Callable[[str], None]) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise RuntimeError("streambench idle needs PostgreSQL: set DATABASE_URL=postgres://…")
    env = {
        **BENCH_ENV,
        "STREAMDASH_SEND_STALL_SECONDS": str(STALL_SECONDS),
        "STREAMDASH_MAX_LIVE_READS": str(readers + NON_READING + 10),
    }
    project, key = project_create(name=f"bench-idle-{time.time_ns()}")
    idle: list[socket.socket] = []
    hanging: list[socket.socket] = []
    try:
        with (
            BenchServer(env) as server,
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as client,
        ):
            assert server.process is not None
            pid = server.process.pid
            quiet, big = fixtures.run_stream(client, "quiet"), fixtures.run_stream(client, "big")
            _write_big(client, big, mib)
            client.get(quiet).raise_for_status()  # warm the pools before the baseline
            time.sleep(1)
            start, threads_start = rss_bytes(pid), threads(pid)
            with RssSampler(pid) as sampler:
                for _ in range(readers):
                    idle.append(_open(server.port, quiet, key))
                for sock in idle:
                    _await_head(sock)
                time.sleep(1)
                with_idle, threads_idle = sampler.now(), threads(pid)
                hanging = [
                    _open(server.port, big, key, small_buffer=True) for _ in range(NON_READING)
                ]
                deadline = time.monotonic() + STALL_SECONDS * 4
                while time.monotonic() < deadline and _server_closed(server, hanging) < NON_READING:
                    time.sleep(0.5)
                closed = _server_closed(server, hanging)
                peak = sampler.peak
                for sock in idle + hanging:
                    sock.close()
                idle, hanging = [], []
                settled = sampler.settle(sampler.now(), SETTLE_SECONDS).settled
    finally:
        for sock in idle + hanging:
            with contextlib.suppress(OSError):
                sock.close()
        project.delete()

    per_reader_kib = (with_idle - start) / readers / 1024
    say(f"server RSS MiB (VmRSS)      stream of the non-reading readers: {mib} MiB")
    say(f"  before the readers         {start / MIB:7.1f}   threads {threads_start}")
    say(
        f"  {readers} idle SSE readers    {with_idle / MIB:7.1f}   threads {threads_idle}   "
        f"+{per_reader_kib:.1f} KiB per reader"
    )
    say(
        f"  + {NON_READING} non-reading readers {peak / MIB:6.1f} (peak)   "
        f"{closed}/{NON_READING} cut off by the server within {STALL_SECONDS * 4:.0f} s "
        f"(stall limit {STALL_SECONDS:.0f} s)"
    )
    say(f"  {SETTLE_SECONDS:.0f} s after all closed     {settled / MIB:7.1f}")
    if closed < NON_READING:
        warn(f"only {closed} of {NON_READING} non-reading readers were cut off")
    return {
        "scenario": "idle",
        "readers": readers,
        "non_reading": NON_READING,
        "mib": mib,
        "rss_start_mib": round(start / MIB, 1),
        "rss_idle_mib": round(with_idle / MIB, 1),
        "kib_per_idle_reader": round(per_reader_kib, 1),
        "rss_peak_mib": round(peak / MIB, 1),
        "rss_settled_mib": round(settled / MIB, 1),
        "threads": [threads_start, threads_idle],
        "non_reading_cut_off": closed,
    }
