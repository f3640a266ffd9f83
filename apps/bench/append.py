"""``streambench append``: append throughput over HTTP against raw PostgreSQL COPY.

Both sides write the same rows (64-byte JSON chunks by default) in the same batches (100 by
default), with the same number of concurrent writers, each batch one durable commit
(synchronous_commit stays on). The HTTP side goes through everything a user's append does:
daphne, authentication, the idempotent-producer check, the stream lock, the COPY, the commit,
the notification. The ratio HTTP / COPY is the figure.

``--workers N`` serves streamdash with ``manage.py serve --workers N`` (N > 1 needs REDIS_URL);
the writers' connections land on the workers as the kernel hands them out, and the split is
printed. Peers, with the same client and the same batches (each with the same producer
headers): the Durable Streams reference server in memory and file-backed (``reference.py``;
skipped with a note without node/npm). Each server's CPU per request comes from /proc.
streamdash runs twice, with its metrics on and off (``STREAMDASH_METRICS=0``): what recording
them costs an append, in the same run.

The rows are compact JSON (``{"w":0,"n":1,"p":"xx…"}``), the bytes the SDK and the browser's
``JSON.stringify`` send, for every server and for COPY alike. Python's default ``json.dumps``
spacing was used before 2026-12-02; streamdash splits a compact body with orjson and a spaced
one with its scanner (apps/streams/payloads.py), so figures from before that date are for the
slower split.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import httpx
from django.db import connection
from django.utils import timezone

from apps.bench import reference
from apps.bench import server as servers
from apps.bench.progress import Progress
from apps.bench.report import ratio
from apps.bench.server import BenchServer
from apps.projects.services import project_create
from apps.streams.models import Chunk
from apps.streams.services import StreamConfig, stream_create

JSON = {"Content-Type": "application/json"}
WARM_UP_BATCHES = 10  # per writer, before each server's timed run
# The rows are compact JSON, as the SDK sends them (``streamdash/sdk/_core.py``).
_COMPACT = (",", ":")


@dataclass(frozen=True)
class Options:
    batches: int
    batch_size: int
    chunk_bytes: int
    writers: int
    workers: int = 1
    reference: bool = True
    seconds: float = 300.0  # each writer stops after this long, whatever it has left


@dataclass(frozen=True)
class Result:
    name: str
    chunks: int
    seconds: float
    cpu_ms: float | None = None  # server CPU per request
    client_cpu_ms: float | None = None  # this benchmark's own CPU per request (every writer)
    split: tuple[int, ...] = ()  # writer connections per server worker

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds


@dataclass(frozen=True)
class Target:
    """A server under test and how a writer makes its stream there (returns the path)."""

    server: BenchServer
    headers: dict[str, str]
    create: Callable[[httpx.Client, int], str]


def _streamdash(server: BenchServer, key: str) -> Target:
    def create(client: httpx.Client, writer: int) -> str:
        run = client.post("/api/v1/runs", json={"task_id": "bench"}).json()
        path = f"/api/v1/runs/{run['id']}/streams/bench-{writer}"
        client.put(path, headers=JSON).raise_for_status()
        return path

    return Target(server, {"Authorization": f"Bearer {key}"}, create)


def _reference(server: BenchServer) -> Target:
    def create(client: httpx.Client, writer: int) -> str:
        path = f"/v1/stream/bench-{time.time_ns()}-{writer}"
        client.put(path, headers=JSON).raise_for_status()
        return path

    return Target(server, {}, create)


def _chunk(writer: int, n: int, size: int) -> bytes:
    head = json.dumps({"w": writer, "n": n, "p": ""}, separators=_COMPACT)
    return json.dumps(
        {"w": writer, "n": n, "p": "x" * max(0, size - len(head))}, separators=_COMPACT
    ).encode()


def _parallel(writers: int, work: Callable[[int], int]) -> tuple[int, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        total = sum(pool.map(work, range(writers)))
    return total, time.perf_counter() - started


def _http(options: Options, target: Target, progress: Progress | None = None) -> Result:
    server = target.server
    with httpx.Client(base_url=server.url, headers=target.headers, timeout=60) as client:
        paths = [target.create(client, writer) for writer in range(options.writers)]
    workers: list[int | None] = [None] * options.writers

    def write(writer: int) -> int:
        deadline = time.monotonic() + options.seconds
        with httpx.Client(base_url=server.url, headers=target.headers, timeout=60) as client:
            for seq in range(options.batches):
                if time.monotonic() > deadline:
                    return seq * options.batch_size
                rows = [
                    _chunk(writer, seq * options.batch_size + i, options.chunk_bytes)
                    for i in range(options.batch_size)
                ]
                response = client.post(
                    paths[writer],
                    content=b"[" + b",".join(rows) + b"]",
                    headers={
                        **JSON,
                        "Producer-Id": f"bench-{writer}",
                        "Producer-Epoch": "0",
                        "Producer-Seq": str(seq),
                    },
                )
                response.raise_for_status()
                if seq == 0 and server.workers > 1:
                    address = response.extensions["network_stream"].get_extra_info("client_addr")
                    workers[writer] = server.worker_of(address[1])
                if progress is not None:
                    progress.advance(options.batch_size)
        return options.batches * options.batch_size

    cpu_before, client_before = server.cpu_seconds(), time.process_time()
    total, seconds = _parallel(options.writers, write)
    cpu = server.cpu_seconds() - cpu_before
    requests = max(1, total // options.batch_size)
    client_ms = (time.process_time() - client_before) / requests * 1000
    split = tuple(sorted(Counter(workers).values(), reverse=True)) if server.workers > 1 else ()
    cpu_ms = cpu / requests * 1000
    return Result(f"HTTP append ({server.name})", total, seconds, cpu_ms, client_ms, split)


def _measure(options: Options, target: Target) -> Result:
    # Warm-up, the same for every server: each of the writers' connections, the server's
    # database connections and their prepared statements exist before the timing starts. With
    # one writer for 5 batches, ``--batches 50`` (200 requests) counted their making: 2.8 ms
    # of CPU per request against 1.45 ms over 1,000 batches, in one sitting.
    _http(replace(options, batches=WARM_UP_BATCHES), target)
    total = options.writers * options.batches * options.batch_size
    with Progress(f"append: {target.server.name}", total) as progress:
        return _http(options, target, progress)


def _copy(options: Options, progress: Progress) -> Result:
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
        deadline = time.monotonic() + options.seconds
        with psycopg.connect(**params) as conn:
            for seq in range(options.batches):
                if time.monotonic() > deadline:
                    return seq * options.batch_size
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
                progress.advance(options.batch_size)
        return options.batches * options.batch_size

    total, seconds = _parallel(options.writers, write)
    return Result("raw psycopg COPY (baseline)", total, seconds)


def _peers(options: Options, say: Callable[[str], None]) -> list[Result]:
    if not options.reference:
        return []
    why = reference.missing()
    if why is not None:
        say(f"note: {why}")
        return []
    results = []
    for mode in reference.MODES:
        with reference.reference_server(mode) as server:
            results.append(_measure(options, _reference(server)))
    return results


def run(options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise RuntimeError("streambench append needs PostgreSQL: set DATABASE_URL=postgres://…")
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        say(f"PostgreSQL synchronous_commit={cursor.fetchone()[0]} (acks are durable)")
    _, key = project_create(name=f"bench-http-{time.time_ns()}")
    with servers.streamdash(options.workers) as server:
        http = _measure(options, _streamdash(server, key))
    with servers.streamdash(options.workers, metrics=False) as server:
        http_off = _measure(options, _streamdash(server, key))
    with Progress("append: raw COPY", options.writers * options.batches * options.batch_size) as p:
        copy = _copy(options, p)
    peers = _peers(options, say)
    say(
        f"batches of {options.batch_size} x {options.chunk_bytes} B chunks, "
        f"{options.writers} writers x {options.batches} batches; streamdash workers: "
        f"{options.workers}, channel layer: {servers.channel_layer()}; CPU per request: the "
        "server's from /proc (database and Redis CPU not included), and this client's own"
    )
    for result in (copy, http, http_off, *peers):
        cpu = f"{result.cpu_ms:6.2f} ms CPU/req" if result.cpu_ms is not None else " " * 17
        client = f"client {result.client_cpu_ms:5.2f} ms" if result.client_cpu_ms else " " * 15
        share = ratio(result.rate, copy.rate)
        say(
            f"{result.name:40} {result.chunks:>8} chunks {result.seconds:7.2f} s "
            f"{result.rate:>9,.0f} chunks/s  {cpu}  {client}  ratio to COPY {share:5.2f}"
        )
    if http.split:
        say(f"writer connections per streamdash worker: {list(http.split)}")
    return {
        "batch_size": options.batch_size,
        "chunk_bytes": options.chunk_bytes,
        "writers": options.writers,
        "workers": options.workers,
        "channel_layer": servers.channel_layer(),
        "copy_rate": copy.rate,
        "http_rate": http.rate,
        "ratio": ratio(http.rate, copy.rate),
        "http_cpu_ms_per_request": http.cpu_ms,
        "client_cpu_ms_per_request": http.client_cpu_ms,
        "http_rate_metrics_off": http_off.rate,
        "http_cpu_ms_per_request_metrics_off": http_off.cpu_ms,
        "worker_split": list(http.split),
        "peers": {
            r.name: {
                "rate": r.rate,
                "ratio": ratio(r.rate, copy.rate),
                "cpu_ms_per_request": r.cpu_ms,
                "client_cpu_ms_per_request": r.client_cpu_ms,
            }
            for r in peers
        },
    }
