"""``streambench fanout``: one stream, many live readers, a steady writer.

On a real daphne on loopback, in one run:

1. **Append throughput** of one writer (one 64-byte JSON chunk a request, each after the last
   one's acknowledgement, ``THROUGHPUT_SECONDS`` each) with nothing reading, then with
   ``--readers`` SSE readers open and 0, 1 and 10 dashboard viewers. The issue's goal: viewers
   cost the writer at most 10% (≥ 90% of the figure with none). After each, the readers must
   catch up before the next one starts; how long that takes is printed too. Beside each rate
   stands the server's CPU time per append, the steadier figure on a machine shared with
   other work (the rate follows whatever share of a core the server gets).
2. **Idle cost**: the server's RSS and thread count before the readers connect and with all of
   them connected and idle; RSS per idle reader = the difference / readers.
3. **Delivery** at ``--rate`` chunks/s for ``--seconds`` with the readers and ``--viewers``
   viewers open; then the stream is closed. Every reader and viewer must have every chunk from
   where it started to the close, in order, exactly once (counted in what it received, checked
   against the indices); latency is send time (before the writer's POST) → arrival at the
   client, per chunk, p50/p99, for SSE readers and viewers apart (viewers batch every 0.05 s).

``--workers N`` serves streamdash with ``manage.py serve --workers N`` (N > 1 needs REDIS_URL:
each worker has its own hub, and the channel layer carries the appends' notifications between
them); the readers' connections land on the workers as the kernel hands them out, and the
split is printed. RSS, threads and CPU are then the whole process tree's. First figures
(2026-12-02 07:58 and 08:01 UTC, load 5.8–6.4, between the one-process runs of
``apps.streams.live``): readers split 552 / 448 and 581 / 419; 14.9 / 20.0 ms of server CPU per
append with the readers open (one process: 10.2 / 10.5); delivery p99 1,982 / 845 ms (one
process: 545 / 1,119). On a machine this loaded a second worker bought nothing.

The writer is a process of its own; readers and viewers share one asyncio loop in this one,
which watches its own lag and CPU and warns when it, not the server, may be the bottleneck.
The server runs with the write rate limit and the cap on live reads per credential off
(``STREAMDASH_RATE_LIMIT_PER_SECOND=0``, ``STREAMDASH_MAX_LIVE_READS=0``: every reader uses the
same key) and SSE responses that outlast the run (``STREAMDASH_SSE_MAX_SECONDS``), so no
reader reconnects.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from django.db import connection

from apps.bench import fixtures, writer
from apps.bench import server as servers
from apps.bench.fanout_clients import LoopWatch, Receipts, SseReader, Viewer, open_reader
from apps.bench.proc import MIB, connections_by_holder, rss_bytes, threads
from apps.bench.progress import Progress, warn
from apps.bench.server import BenchServer
from apps.projects.services import project_create

THROUGHPUT_SECONDS = 5.0
THROUGHPUT_VIEWERS = (0, 1, 10)
CHUNK_BYTES = 64
GOAL_SHARE = 0.9
CONNECT_BATCH = 50
IDLE_SECONDS = 2.0
CLIENT_CPU_WARN = 0.9
LOOP_LAG_WARN = 0.1
SERVER_ENV = {
    "STREAMDASH_RATE_LIMIT_PER_SECOND": "0",
    "STREAMDASH_MAX_LIVE_READS": "0",
    "STREAMDASH_SSE_MAX_SECONDS": "3600",
}


@dataclass(frozen=True)
class Options:
    readers: int
    viewers: int
    rate: float
    seconds: float
    workers: int = 1


class Fanout:
    """One run of the scenario against one server; the phases are its methods."""

    def __init__(self, server: BenchServer, key: str, path: str, cookie: str, options: Options):
        self.server, self.key, self.path, self.cookie = server, key, path, cookie
        self.options = options
        self.stream_id = fixtures.stream_row(path).pk
        self.tail = 0
        self.readers: list[SseReader] = []
        self.viewers: list[Viewer] = []
        self.watch = LoopWatch()
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self.figures: dict[str, Any] = {}
        self.client_warnings: list[str] = []

    async def _writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.pool, fn, self.server.url, self.path, self.key, *args
        )

    def _client_check(self, phase: str) -> dict[str, float]:
        share, lag = self.watch.phase()
        if share > CLIENT_CPU_WARN or lag > LOOP_LAG_WARN:
            message = (
                f"{phase}: the client lags (CPU {share:.0%} of a core, loop late by up to "
                f"{lag * 1000:.0f} ms); its figures are bounded by the client, not the server"
            )
            warn(message)
            self.client_warnings.append(message)
        return {"client_cpu_share": round(share, 2), "client_loop_lag_ms": round(lag * 1000, 1)}

    def _rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.server.pids())

    def _threads(self) -> int:
        return sum(threads(pid) for pid in self.server.pids())

    # --- phases ---------------------------------------------------------------------------
    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, writer.warm_up)
        reader = await open_reader(self.server.port, self.path, self.key, "now")
        viewer = Viewer(self.server.port, self.stream_id, self.tail, self.cookie)
        await asyncio.wait_for(asyncio.gather(reader.ready, viewer.ready), 30)
        _, _, self.tail = await self._writer(writer.flat_out, 1.0, CHUNK_BYTES)
        reader.close()
        await viewer.close()
        await asyncio.sleep(0.5)

    async def throughput(self, label: str) -> dict[str, Any]:
        cpu = self.server.cpu_seconds()
        self.watch.phase()
        with Progress(f"append flat out: {label}", THROUGHPUT_SECONDS, " s") as bar:
            task = asyncio.ensure_future(
                self._writer(writer.flat_out, THROUGHPUT_SECONDS, CHUNK_BYTES)
            )
            began = time.monotonic()
            while not task.done():
                await asyncio.wait([task], timeout=0.1)
                bar.update(min(time.monotonic() - began, THROUGHPUT_SECONDS))
            appends, seconds, self.tail = task.result()
        server_cpu = self.server.cpu_seconds() - cpu
        catch_up = await self._catch_up(f"readers catch up: {label}")
        return {
            "appends_per_s": round(appends / seconds, 1),
            "server_cpu_per_append_ms": round(server_cpu / appends * 1000, 2),
            "server_cpu_share": round(server_cpu / seconds, 2),
            "catch_up_seconds": catch_up,
            "threads": self._threads(),
            **self._client_check(f"throughput {label}"),
        }

    async def _catch_up(self, label: str, limit: float = 120.0) -> float | None:
        """Seconds until every open reader and viewer has the tail (None: not within limit)."""
        clients = [r.receipts for r in self.readers] + [v.receipts for v in self.viewers]
        began = time.monotonic()
        with Progress(label, len(clients), " clients") as bar:
            while time.monotonic() - began < limit:
                behind = sum(1 for r in clients if r.position < self.tail and r.error is None)
                bar.update(len(clients) - behind)
                if not behind:
                    return round(time.monotonic() - began, 2)
                await asyncio.sleep(0.05)
        warn(f"{label}: not every client reached index {self.tail} within {limit:.0f} s")
        return None

    async def connect_readers(self) -> dict[str, Any]:
        rss_before, threads_before = self._rss(), self._threads()
        count = self.options.readers
        with Progress("connect SSE readers", count, " readers") as bar:
            for first in range(0, count, CONNECT_BATCH):
                batch = [
                    await open_reader(self.server.port, self.path, self.key, "now")
                    for _ in range(min(CONNECT_BATCH, count - first))
                ]
                await asyncio.wait_for(asyncio.gather(*(r.ready for r in batch)), 60)
                self.readers += batch
                bar.update(len(self.readers))
        failed = [r.receipts.error for r in self.readers if r.receipts.error]
        if failed:
            raise RuntimeError(f"{len(failed)} readers failed to connect: {failed[0]}")
        await asyncio.sleep(IDLE_SECONDS)
        rss_idle, threads_idle = self._rss(), self._threads()
        ports = {r.local_port for r in self.readers}
        held = connections_by_holder(self.server.port, ports, self.server.pids())
        return {
            "readers_per_worker": sorted(held.values(), reverse=True),
            "rss_before_mib": round(rss_before / MIB, 1),
            "rss_idle_readers_mib": round(rss_idle / MIB, 1),
            "rss_per_idle_reader_kib": round((rss_idle - rss_before) / max(count, 1) / 1024, 1),
            "threads_before": threads_before,
            "threads_idle_readers": threads_idle,
        }

    async def set_viewers(self, count: int) -> None:
        while len(self.viewers) > count:
            await self.viewers.pop().close()
        added = [
            Viewer(self.server.port, self.stream_id, self.tail, self.cookie)
            for _ in range(count - len(self.viewers))
        ]
        await asyncio.wait_for(asyncio.gather(*(v.ready for v in added)), 60)
        failed = [v.receipts.error for v in added if v.receipts.error]
        if failed:
            raise RuntimeError(f"{len(failed)} viewers failed to connect: {failed[0]}")
        self.viewers += added

    async def deliver(self) -> dict[str, Any]:
        options = self.options
        self.watch.phase()
        peak_threads = self._threads()
        with Progress(f"deliver at {options.rate:g} chunks/s", options.seconds, " s") as bar:
            task = asyncio.ensure_future(
                self._writer(writer.paced, options.rate, options.seconds, CHUNK_BYTES)
            )
            began = time.monotonic()
            while not task.done():
                await asyncio.wait([task], timeout=0.25)
                peak_threads = max(peak_threads, self._threads())
                lag = self.tail - min((r.receipts.position for r in self.readers), default=0)
                bar.update(min(time.monotonic() - began, options.seconds), f"slowest behind {lag}")
            sent, late = task.result()
        client = self._client_check("delivery")
        if late:
            warn(
                f"delivery: the writer sent {late} of {len(sent)} chunks late: the server kept "
                f"{len(sent) / options.seconds:.0f} of {options.rate:g} appends/s"
            )
        self.tail = sent[-1][0] + 1 if sent else self.tail
        async with httpx.AsyncClient(base_url=self.server.url) as http:
            closing = await http.post(
                self.path, headers={"Stream-Closed": "true", "Authorization": f"Bearer {self.key}"}
            )
            closing.raise_for_status()
        clients = [r.done for r in self.readers] + [v.done for v in self.viewers]
        with Progress("readers finish (closed)", len(clients), " clients") as bar:
            ending = asyncio.ensure_future(asyncio.wait(clients, timeout=120))
            while not ending.done():
                await asyncio.wait([ending], timeout=0.1)
                bar.update(sum(1 for c in clients if c.done()))
        sent_at = {index: at for index, at, _ in sent}
        acks = sorted(acked - at for _, at, acked in sent)
        return {
            "chunks_sent": len(sent),
            "rate_kept": round(len(sent) / options.seconds, 1),
            "sent_late": late,
            "append_p50_ms": _quantile_ms(acks, 0.5),
            "append_p99_ms": _quantile_ms(acks, 0.99),
            "peak_threads": peak_threads,
            "readers": _delivery([r.receipts for r in self.readers], self.tail, sent_at),
            "viewers": _delivery([v.receipts for v in self.viewers], self.tail, sent_at),
            **client,
        }

    async def close(self) -> None:
        for reader in self.readers:
            reader.close()
        for viewer in self.viewers:
            await viewer.close()
        await self.watch.stop()
        self.pool.shutdown()


def _quantile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _delivery(clients: list[Receipts], tail: int, sent_at: dict[int, float]) -> dict[str, Any]:
    """Completeness (chunks per client, as a histogram) and latency of the paced chunks."""
    latencies = array("d")
    for receipts in clients:
        previous = receipts.start
        for at, end in zip(receipts.times, receipts.ends, strict=True):
            latencies.extend(at - sent_at[i] for i in range(previous, end) if i in sent_at)
            previous = end
    ordered = sorted(latencies)

    incomplete = [r for r in clients if not r.complete(tail)]
    return {
        "clients": len(clients),
        "complete": len(clients) - len(incomplete),
        "chunks_per_client": dict(Counter(r.counted for r in clients)),
        "expected_per_client": dict(Counter(tail - r.start for r in clients)),
        "errors": dict(Counter(r.error or "out of order/miscounted" for r in incomplete)),
        "latency_p50_ms": _quantile_ms(ordered, 0.5),
        "latency_p99_ms": _quantile_ms(ordered, 0.99),
        "latency_max_ms": _quantile_ms(ordered, 1.0),
    }


async def _scenario(fanout: Fanout, say: Callable[[str], None]) -> dict[str, Any]:
    fanout.watch.start()
    try:
        await fanout.warm_up()
        throughput = {"nothing open": await fanout.throughput("nothing open")}
        idle = await fanout.connect_readers()
        for count in THROUGHPUT_VIEWERS:
            await fanout.set_viewers(count)
            label = f"readers + {count} viewers"
            throughput[label] = await fanout.throughput(label)
        await fanout.set_viewers(fanout.options.viewers)
        delivery = await fanout.deliver()
    finally:
        await fanout.close()
    return {"throughput": throughput, "idle": idle, "delivery": delivery}


def _report(options: Options, figures: dict[str, Any], say: Callable[[str], None]) -> None:
    throughput = figures["throughput"]
    base = throughput["readers + 0 viewers"]
    say(
        f"append throughput, one writer, {options.readers} SSE readers open unless said "
        "(x = share of the figure with 0 viewers, by rate and by server CPU per append):"
    )
    for label, row in throughput.items():
        rate, cpu = row["appends_per_s"], row["server_cpu_per_append_ms"]
        say(
            f"  {label:22} {rate:8.1f} appends/s  x{rate / base['appends_per_s']:5.2f}   "
            f"server CPU {cpu:6.2f} ms/append x{base['server_cpu_per_append_ms'] / cpu:5.2f} "
            f"({row['server_cpu_share']:.0%} of a core)   readers caught up after "
            f"{row['catch_up_seconds']} s"
        )
    viewers = throughput["readers + 10 viewers"]
    by_rate = viewers["appends_per_s"] / base["appends_per_s"]
    by_cpu = base["server_cpu_per_append_ms"] / viewers["server_cpu_per_append_ms"]
    say(
        f"goal: with viewers >= {GOAL_SHARE:.0%} of the figure with none: "
        f"{'ok' if by_rate >= GOAL_SHARE else 'MISSED'} (10 viewers: {by_rate:.0%} by rate, "
        f"{by_cpu:.0%} by server CPU per append)"
    )
    idle = figures["idle"]
    say(
        f"idle readers: RSS {idle['rss_before_mib']} -> {idle['rss_idle_readers_mib']} MiB = "
        f"{idle['rss_per_idle_reader_kib']} KiB per reader; threads {idle['threads_before']} -> "
        f"{idle['threads_idle_readers']}"
    )
    if options.workers > 1:
        say(
            f"workers: {options.workers} (channel layer: {servers.channel_layer()}); SSE "
            f"readers per worker: {idle['readers_per_worker']}"
        )
    delivery = figures["delivery"]
    say(
        f"delivery at {options.rate:g} chunks/s for {options.seconds:g} s "
        f"({delivery['chunks_sent']} chunks = {delivery['rate_kept']}/s; the writer's append "
        f"p50 {delivery['append_p50_ms']} ms, p99 {delivery['append_p99_ms']} ms; "
        f"peak server threads {delivery['peak_threads']}):"
    )
    for kind in ("readers", "viewers"):
        row = delivery[kind]
        counts, expected = row["chunks_per_client"], row["expected_per_client"]
        say(
            f"  {kind:8} {row['complete']}/{row['clients']} got every chunk "
            f"(chunks per client {counts}, expected {expected}); "
            f"latency p50 {row['latency_p50_ms']} ms, p99 {row['latency_p99_ms']} ms, "
            f"max {row['latency_max_ms']} ms"
        )
        if row["errors"]:
            say(f"           incomplete: {row['errors']}")


def run(options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise RuntimeError("streambench fanout needs PostgreSQL: set DATABASE_URL=postgres://…")
    project, key = project_create(name=f"bench-fanout-{time.time_ns()}")
    cookie = fixtures.session_cookie()
    if options.workers > 1:
        serving = servers.streamdash(options.workers, env=SERVER_ENV)
    else:
        serving = BenchServer(SERVER_ENV)
    try:
        with serving as server:
            assert server.process is not None
            warn(f"server pid {server.process.pid} (attach py-spy here)")
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                path = fixtures.run_stream(client, "fanout")
            fanout = Fanout(server, key, path, cookie, options)
            figures = asyncio.run(_scenario(fanout, say))
    finally:
        project.delete()
    _report(options, figures, say)
    return {
        "scenario": "fanout",
        "readers": options.readers,
        "viewers": options.viewers,
        "rate": options.rate,
        "seconds": options.seconds,
        "workers": options.workers,
        "goal_share_with_viewers": GOAL_SHARE,
        **figures,
        "client_warnings": fanout.client_warnings,
    }
