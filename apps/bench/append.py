"""``streambench append``: append throughput over HTTP against raw PostgreSQL COPY.

Both sides write the same rows (64-byte JSON chunks by default) in the same batches (100 by
default), with the same number of concurrent writers, each batch one durable commit
(synchronous_commit stays on). The HTTP side goes through everything a user's append does:
daphne, authentication, the idempotent-producer check, the stream lock, the COPY, the commit,
the notification. The ratio HTTP / COPY is the figure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from django.db import connection
from django.utils import timezone

from apps.bench.server import BenchServer
from apps.projects.services import project_create
from apps.streams.models import Chunk
from apps.streams.services import StreamConfig, stream_create


@dataclass(frozen=True)
class Options:
    batches: int
    batch_size: int
    chunk_bytes: int
    writers: int


@dataclass(frozen=True)
class Result:
    name: str
    chunks: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds


def _chunk(writer: int, n: int, size: int) -> bytes:
    head = json.dumps({"w": writer, "n": n, "p": ""})
    return json.dumps({"w": writer, "n": n, "p": "x" * max(0, size - len(head))}).encode()


def _parallel(writers: int, work: Callable[[int], int]) -> tuple[int, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        total = sum(pool.map(work, range(writers)))
    return total, time.perf_counter() - started


def _http(options: Options, url: str, key: str) -> Result:
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
        paths = []
        for writer in range(options.writers):
            run = client.post("/api/v1/runs", json={"task_id": "bench"}).json()
            path = f"/api/v1/runs/{run['id']}/streams/bench-{writer}"
            client.put(path, headers={"Content-Type": "application/json"}).raise_for_status()
            paths.append(path)

    def write(writer: int) -> int:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
            for seq in range(options.batches):
                rows = [
                    _chunk(writer, seq * options.batch_size + i, options.chunk_bytes)
                    for i in range(options.batch_size)
                ]
                response = client.post(
                    paths[writer],
                    content=b"[" + b",".join(rows) + b"]",
                    headers={
                        "Content-Type": "application/json",
                        "Producer-Id": f"bench-{writer}",
                        "Producer-Epoch": "0",
                        "Producer-Seq": str(seq),
                    },
                )
                response.raise_for_status()
        return options.batches * options.batch_size

    total, seconds = _parallel(options.writers, write)
    return Result("HTTP append (streamdash)", total, seconds)


def _copy(options: Options) -> Result:
    import psycopg

    project, _ = project_create(name=f"bench-copy-{time.time_ns()}")
    streams = [
        stream_create(project=project, key=f"copy-{time.time_ns()}-{w}", config=StreamConfig())[0]
        for w in range(options.writers)
    ]
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    table = Chunk._meta.db_table

    def write(writer: int) -> int:
        stream_id = streams[writer].pk
        with psycopg.connect(**params) as conn:
            for seq in range(options.batches):
                now = timezone.now()
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        f'COPY "{table}" (stream_id, "index", data, producer, created_at) '
                        "FROM STDIN (FORMAT BINARY)"
                    ) as copy,
                ):
                    copy.set_types(["int8", "int8", "bytea", "varchar", "timestamptz"])
                    for i in range(options.batch_size):
                        n = seq * options.batch_size + i
                        copy.write_row(
                            (stream_id, n, _chunk(writer, n, options.chunk_bytes), "", now)
                        )
                conn.commit()
        return options.batches * options.batch_size

    total, seconds = _parallel(options.writers, write)
    return Result("raw psycopg COPY (baseline)", total, seconds)


def run(options: Options, say: Callable[[str], None]) -> dict[str, float]:
    if connection.vendor != "postgresql":
        raise RuntimeError("streambench append needs PostgreSQL: set DATABASE_URL=postgres://…")
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        say(f"PostgreSQL synchronous_commit={cursor.fetchone()[0]} (acks are durable)")
    _, key = project_create(name=f"bench-http-{time.time_ns()}")
    with BenchServer() as server:
        # Warm-up: connection pools, code paths.
        _http(Options(5, options.batch_size, options.chunk_bytes, 1), server.url, key)
        cpu_before = server.cpu_seconds()
        http = _http(options, server.url, key)
        server_cpu = server.cpu_seconds() - cpu_before
    copy = _copy(options)
    for result in (copy, http):
        say(
            f"{result.name:32} {result.chunks:>8} chunks {result.seconds:8.2f} s "
            f"{result.rate:>10,.0f} chunks/s"
        )
    requests = options.writers * options.batches
    say(
        f"server CPU per append request: {server_cpu / requests * 1000:.2f} ms "
        f"({server_cpu:.1f} s for {requests} requests)"
    )
    ratio = http.rate / copy.rate
    say(
        f"ratio HTTP / COPY = {ratio:.2f}  (batches of {options.batch_size} x "
        f"{options.chunk_bytes} B chunks, {options.writers} writers)"
    )
    return {"http_rate": http.rate, "copy_rate": copy.rate, "ratio": ratio}
