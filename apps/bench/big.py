"""``streambench big``: one large stream written over HTTP, then read back whole.

The stream holds ``--mib`` MiB of JSON chunks of 500 KB each (JSON strings of base64 from
``os.urandom``, so PostgreSQL's TOAST compression cannot shrink them), appended one chunk a
request to a real daphne on loopback. It is then read back twice over HTTP — by catch-up pages
(``GET ?offset=…`` following ``Stream-Next-Offset`` until ``Stream-Up-To-Date``) and by SSE
(``live=sse`` from ``-1`` until up to date) — while a thread samples the server's resident
memory (``/proc/<pid>/status`` VmRSS): before the read, its peak, right after, and
``SETTLE_SECONDS`` after the reader went. The baseline, in the same run, is PostgreSQL handing
the same rows to psycopg: ``COPY (SELECT data … ORDER BY index) TO STDOUT (FORMAT BINARY)``
(binary, so bytea is not hex-encoded to twice its size: the cheapest way out of the database).

Throughput is stream payload (the chunks' bytes) per second, in MB/s (10^6 bytes); every read
is checked to deliver every chunk and every byte.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from django.db import connection
from psycopg import sql

from apps.bench import fixtures, wire
from apps.bench.proc import MIB, RssFigures, RssSampler, rss_bytes
from apps.bench.progress import Progress, warn
from apps.bench.server import BenchServer
from apps.projects.services import project_create
from apps.streams.models import Chunk

CHUNK_BYTES = 500_000
SETTLE_SECONDS = 5.0
GOAL_MB_S = 100.0
GOAL_RSS_GROWTH_MIB = 64.0
_RECV_BYTES = 1 << 20


@dataclass(frozen=True)
class ReadFigures:
    name: str
    payload_bytes: int
    seconds: float
    client_cpu_seconds: float
    server_cpu_seconds: float | None = None
    rss: RssFigures | None = None

    @property
    def mb_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6

    def as_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "mb_s": round(self.mb_s, 1),
            "seconds": round(self.seconds, 2),
            "client_cpu_share": round(self.client_cpu_seconds / self.seconds, 2),
        }
        if self.server_cpu_seconds is not None:
            figures["server_cpu_share"] = round(self.server_cpu_seconds / self.seconds, 2)
        return figures | (self.rss.as_mib() if self.rss else {})


def chunk_sizes(total: int, size: int = CHUNK_BYTES) -> list[int]:
    """``total`` bytes as chunks of ``size`` (the last one shorter)."""
    return [min(size, total - start) for start in range(0, total, size)]


def _chunks(sizes: list[int]) -> Iterator[bytes]:
    noise = base64.b64encode(os.urandom(CHUNK_BYTES)).decode("ascii")
    for n, size in enumerate(sizes):
        body = f"{n:010d}{noise}"[: size - 2]
        yield json.dumps(body).encode("ascii")


def _json_payload(body_bytes: int, chunks: int) -> int:
    """Payload bytes of a JSON array of ``chunks`` values: ``[`` ``,``×(n-1) ``]`` taken off."""
    return body_bytes - chunks - 1 if chunks else 0


def _write(client: httpx.Client, path: str, sizes: list[int]) -> float:
    began = time.perf_counter()
    with Progress("write (HTTP POST)", sum(sizes) / MIB, " MiB") as bar:
        written = 0
        for chunk in _chunks(sizes):
            client.post(path, content=chunk, headers=fixtures.JSON).raise_for_status()
            written += len(chunk)
            bar.update(written / MIB)
    client.post(path, headers={"Stream-Closed": "true"}).raise_for_status()
    return time.perf_counter() - began


def _read_pages(client: httpx.Client, path: str, chunks: int) -> int:
    payload, offset = 0, "-1"
    with Progress("read: catch-up pages", chunks, " chunks") as bar:
        while True:
            response = client.get(path, params={"offset": offset})
            response.raise_for_status()
            start = int(response.headers["Stream-Start-Index"])
            next_index = int(response.headers["Stream-Next-Index"])
            payload += _json_payload(len(response.content), next_index - start)
            offset = response.headers["Stream-Next-Offset"]
            bar.update(next_index)
            if response.headers.get("Stream-Up-To-Date") == "true":
                break
    if next_index != chunks:
        raise RuntimeError(f"catch-up read ended at index {next_index}, not {chunks}")
    return payload


def _sse_events(port: int, path: str, key: str, offset: str) -> Iterator[tuple[str, bytes]]:
    """One SSE response's events, from a blocking socket (as few client cycles as can be)."""
    request = wire.get_request(
        f"127.0.0.1:{port}", path, {"offset": offset, "live": "sse"}, {"Authorization": key}
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        head, body, events = wire.ResponseHead(), wire.ChunkedDecoder(), wire.SseDecoder()
        while data := sock.recv(_RECV_BYTES):
            if not head.done:
                data = head.feed(data)
                if not head.done:
                    continue
                if head.status != 200:
                    raise RuntimeError(f"SSE read answered {head.status}")
            yield from events.feed(body.feed(data) if head.chunked else data)


def _read_sse(port: int, path: str, key: str, chunks: int) -> int:
    """Every chunk by SSE from -1; reconnects from the last offset when the server ends the
    response (``STREAMDASH_SSE_MAX_SECONDS``), as a client does."""
    payload, position, offset = 0, 0, "-1"
    with Progress("read: SSE", chunks, " chunks") as bar:
        while position < chunks:
            data_bytes, began_at = 0, position
            for event, data in _sse_events(port, path, f"Bearer {key}", offset):
                if event == "data":
                    data_bytes = len(data)
                elif event == "control":
                    control = json.loads(data)
                    offset = control["streamNextOffset"]
                    next_index = int(offset.rsplit("_", 1)[1])
                    payload += _json_payload(data_bytes, next_index - position)
                    position, data_bytes = next_index, 0
                    bar.update(position)
                    if control.get("upToDate") and position >= chunks:
                        break
            if position == began_at < chunks:
                raise RuntimeError(f"an SSE response ended without a chunk, at index {position}")
    return payload


def _copy(stream_id: int, total: int) -> ReadFigures:
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    statement = sql.SQL(
        'COPY (SELECT data FROM {} WHERE stream_id = {} ORDER BY "index") TO STDOUT (FORMAT BINARY)'
    ).format(sql.Identifier(Chunk._meta.db_table), sql.Literal(stream_id))
    with psycopg.connect(**params) as conn, conn.cursor() as cursor:
        began, cpu = time.perf_counter(), time.process_time()
        wire_bytes = 0
        with (
            Progress("baseline: COPY TO STDOUT", total / MIB, " MiB") as bar,
            cursor.copy(statement) as copy,
        ):
            for block in copy:
                wire_bytes += len(block)
                bar.update(wire_bytes / MIB)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    if wire_bytes < total:
        raise RuntimeError(f"COPY returned {wire_bytes} bytes, fewer than the {total} stored")
    return ReadFigures("COPY TO STDOUT (psycopg)", total, seconds, cpu)


def _measured(name: str, server: BenchServer, total: int, read: Callable[[], int]) -> ReadFigures:
    assert server.process is not None
    with RssSampler(server.process.pid) as sampler:
        began, cpu, server_cpu = time.perf_counter(), time.process_time(), server.cpu_seconds()
        payload = read()
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        server_cpu = server.cpu_seconds() - server_cpu
        end = sampler.now()
        rss = sampler.settle(end, SETTLE_SECONDS)
    if payload != total:
        raise RuntimeError(f"{name} delivered {payload} payload bytes, not {total}")
    if cpu > 0.9 * seconds:
        warn(f"{name}: the client used {cpu / seconds:.0%} of a core; it may be the bottleneck")
    return ReadFigures(name, payload, seconds, cpu, server_cpu, rss)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def run(mib: int, say: Callable[[str], None]) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise RuntimeError("streambench big needs PostgreSQL: set DATABASE_URL=postgres://…")
    total = mib * MIB
    sizes = chunk_sizes(total)
    project, key = project_create(name=f"bench-big-{time.time_ns()}")
    try:
        with BenchServer() as server:
            assert server.process is not None
            pid = server.process.pid
            warn(f"server pid {pid} (attach py-spy here)")
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as client:
                path = fixtures.run_stream(client, "big")
                write_seconds = _write(client, path, sizes)
                rss_written = rss_bytes(pid)
                reads = [
                    _measured(
                        "catch-up pages",
                        server,
                        total,
                        lambda: _read_pages(client, path, len(sizes)),
                    ),
                    _measured(
                        "SSE", server, total, lambda: _read_sse(server.port, path, key, len(sizes))
                    ),
                ]
        stream = fixtures.stream_row(path)
        if stream.byte_size != total or not stream.closed:
            raise RuntimeError(f"stream holds {stream.byte_size} bytes, not {total}")
        copy = _copy(stream.pk, total)
    finally:
        project.delete()

    say(
        f"stream: {mib} MiB in {len(sizes)} chunks of {CHUNK_BYTES:,} B, written over HTTP in "
        f"{write_seconds:.1f} s ({total / write_seconds / 1e6:.1f} MB/s); server RSS after "
        f"the write {rss_written / MIB:.0f} MiB"
    )
    settle = f"+{SETTLE_SECONDS:.0f} s"
    say(
        f"{'':26}{'MB/s':>8} {'vs COPY':>8} server CPU   server RSS MiB: start  peak  end  {settle}"
    )
    say(f"{copy.name:26}{copy.mb_s:8.1f} {1:8.2f}")
    for read in reads:
        assert read.rss is not None
        rss = read.rss
        server_cpu = (read.server_cpu_seconds or 0) / read.seconds
        say(
            f"{read.name:26}{read.mb_s:8.1f} {read.mb_s / copy.mb_s:8.2f} {server_cpu:10.0%}   "
            f"{' ' * 15}{rss.start / MIB:6.0f}{rss.peak / MIB:6.0f}{rss.end / MIB:5.0f}"
            f"{rss.settled / MIB:6.0f}"
        )
    for read in reads:
        assert read.rss is not None
        growth = max(read.rss.peak, read.rss.settled) - read.rss.start
        say(
            f"goal {read.name}: >= {GOAL_MB_S:.0f} MB/s: {_verdict(read.mb_s >= GOAL_MB_S)}; "
            f"RSS growth <= {GOAL_RSS_GROWTH_MIB:.0f} MiB during and after "
            f"(+{growth / MIB:.0f} MiB): {_verdict(growth <= GOAL_RSS_GROWTH_MIB * MIB)}"
        )
    return {
        "scenario": "big",
        "mib": mib,
        "chunks": len(sizes),
        "chunk_bytes": CHUNK_BYTES,
        "write_mb_s": round(total / write_seconds / 1e6, 1),
        "rss_after_write_mib": round(rss_written / MIB, 1),
        "copy": copy.as_dict(),
        "pages": reads[0].as_dict(),
        "sse": reads[1].as_dict(),
        "goal_mb_s": GOAL_MB_S,
        "goal_rss_growth_mib": GOAL_RSS_GROWTH_MIB,
        "settle_seconds": SETTLE_SECONDS,
    }
