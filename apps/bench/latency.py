"""``streambench latency``: from an append to a live reader, at 20, 500 and 2,000 chunks/s.

One writer appends on a fixed schedule, a batch every 10 ms (at 20 chunks/s: one chunk every
50 ms), for ``seconds`` at each rate, while one reader follows the stream live. Each chunk
carries the time its batch was due (``perf_counter_ns``); the reader, a thread of the same
process, notes when it arrives: latency = arrival − due, p50 and p99 over every chunk. A writer
held up by a slow append sends the batches that fell due meanwhile in one request, and their
chunks keep their own due times, so the rate holds and the wait is counted (no coordinated
omission); the requests a second are printed beside it. The systems, same schedule, same
client:

- streamdash: POST append → SSE (``live=sse``): the write path and its commit, the notification
  through the channel layer, the hub, the SSE frame;
- PostgreSQL alone (the baseline): one transaction per request with a multi-row INSERT into the
  chunk table and a NOTIFY carrying the due times, committed durably → a LISTEN connection
  (psycopg). The database's own notification path, with no HTTP on either side;
- the Durable Streams reference server (its SSE), in memory and file-backed, with the very
  writer and reader code used for streamdash (``reference.py``; skipped without node/npm).

A warm-up second at 20 chunks/s precedes each system's rates and is not counted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from django.db import connection
from django.utils import timezone

from apps.bench import reference, wire
from apps.bench import server as servers
from apps.bench.progress import Progress
from apps.bench.report import percentile, ratio
from apps.projects.services import project_create
from apps.streams.models import Chunk
from apps.streams.services import StreamConfig, stream_create

__all__ = ["Options", "run"]

JSON = {"Content-Type": "application/json"}
IDLE_SECONDS = 3.0  # a reader that hears nothing this long after the writer stopped gives up

Send = Callable[[list[int]], None]  # one request: the due time (ns) of each of its chunks
Follow = Callable[["Collector"], None]
Make = Callable[[str], tuple[Follow, Send, Callable[[], None]]]  # a fresh stream's ends


@dataclass(frozen=True)
class Options:
    rates: tuple[int, ...]
    seconds: float
    workers: int
    reference: bool


@dataclass(frozen=True)
class Figures:
    rate: float  # chunks/s the writer achieved
    requests: float  # appends a second it took
    sent: int
    received: int
    p50_ms: float
    p99_ms: float


class Collector:
    """The reader's side: due times in, latencies out; ``finished`` once all sent arrived."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.expected: int | None = None  # set by the writer's side when it stops
        self.connected = threading.Event()
        self.error: BaseException | None = None

    def add(self, due_ns: Iterable[int]) -> None:
        now = time.perf_counter_ns()
        self.latencies_ms.extend((now - t) / 1e6 for t in due_ns)

    @property
    def finished(self) -> bool:
        return self.expected is not None and len(self.latencies_ms) >= self.expected


def _schedule(rate: int) -> tuple[float, int]:
    """(seconds between batches, chunks per batch) for ``rate`` chunks/s."""
    interval = max(0.01, 1 / rate)
    return interval, max(1, round(rate * interval))


def _measure(follow: Follow, send: Send, rate: int, seconds: float, label: str) -> Figures:
    collector = Collector()

    def read() -> None:
        try:
            follow(collector)
        except BaseException as exc:  # reported by the writer's side
            collector.error = exc
        finally:
            collector.connected.set()

    reader = threading.Thread(target=read, name="latency-reader", daemon=True)
    reader.start()
    collector.connected.wait(30)
    if collector.error is not None:
        raise RuntimeError(f"{label}: the reader failed: {collector.error!r}")
    time.sleep(0.5)  # the server has subscribed the reader by then
    interval, per_batch = _schedule(rate)
    batches = max(1, int(seconds / interval))
    step = round(interval * 1e9)
    done = requests = 0  # batches sent, requests made
    with Progress(label, batches * per_batch) as progress:
        started = time.perf_counter_ns()
        while done < batches:
            delay = (started + done * step - time.perf_counter_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            due = min(batches, (time.perf_counter_ns() - started) // step + 1)
            send([started + batch * step for batch in range(done, due) for _ in range(per_batch)])
            progress.advance((due - done) * per_batch)
            done, requests = due, requests + 1
        elapsed = (time.perf_counter_ns() - started) / 1e9
    sent = done * per_batch
    collector.expected = sent
    reader.join(IDLE_SECONDS + 10)
    if collector.error is not None:
        raise RuntimeError(f"{label}: the reader failed: {collector.error!r}")
    latencies = collector.latencies_ms
    return Figures(
        rate=sent / elapsed,
        requests=requests / elapsed,
        sent=sent,
        received=len(latencies),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
    )


def _chunks(due_ns: list[int]) -> list[bytes]:
    return [b'{"t":%d,"n":%d}' % (t, n) for n, t in enumerate(due_ns)]


def _body(due_ns: list[int]) -> bytes:
    return b"[" + b",".join(_chunks(due_ns)) + b"]"


def _http(url: str, path: str, headers: dict[str, str]) -> tuple[Follow, Send, httpx.Client]:
    """The HTTP writer and the SSE reader, the same for streamdash and the reference server."""
    writer = httpx.Client(base_url=url, headers=headers, timeout=30)
    writer.put(path, headers=JSON).raise_for_status()

    def send(due_ns: list[int]) -> None:
        writer.post(path, content=_body(due_ns), headers=JSON).raise_for_status()

    def follow(collector: Collector) -> None:
        offset = "-1"
        timeout = httpx.Timeout(30, read=IDLE_SECONDS)
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
            while not collector.finished:
                params = {"offset": offset, "live": "sse"}
                had = len(collector.latencies_ms)
                try:
                    with client.stream("GET", path, params=params) as response:
                        response.raise_for_status()
                        collector.connected.set()
                        decoder = wire.SseDecoder()
                        for piece in response.iter_bytes():
                            for event, data in decoder.feed(piece):
                                if event == "data":
                                    collector.add(chunk["t"] for chunk in json.loads(data))
                                    if collector.finished:
                                        return
                                elif event == "control":
                                    offset = json.loads(data).get("streamNextOffset", offset)
                except httpx.ReadTimeout:
                    return  # silence after the writer stopped: what was lost stays lost
                if len(collector.latencies_ms) == had:
                    return  # the server ended a response that brought nothing: stop, not spin

    return follow, send, writer


def _postgres(label: str) -> tuple[Follow, Send, Callable[[], None]]:
    """INSERT + NOTIFY in one durable transaction per batch → LISTEN, on a stream of its own."""
    import psycopg

    project, _ = project_create(name=f"bench-latency-{time.time_ns()}")
    stream, _ = stream_create(project=project, key=label, config=StreamConfig())
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    channel = f"bench_latency_{stream.pk}"
    table = Chunk._meta.db_table
    writer = psycopg.connect(**params)
    index = 0

    def send(due_ns: list[int]) -> None:
        nonlocal index
        now = timezone.now()
        chunks = _chunks(due_ns)
        rows = [(stream.pk, index + i, chunk, "", now) for i, chunk in enumerate(chunks)]
        index += len(chunks)
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
        # "due:count" per batch; NOTIFY payloads stay under 8,000 bytes, so 300 batches a piece.
        batches = [f"{t}:{n}" for t, n in Counter(due_ns).items()]
        with writer.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO "{table}" (stream_id, "index", data, producer, created_at) '
                f"VALUES {values}",
                [value for row in rows for value in row],
            )
            for start in range(0, len(batches), 300):
                payload = " ".join(batches[start : start + 300])
                cursor.execute("SELECT pg_notify(%s, %s)", (channel, payload))
        writer.commit()

    def follow(collector: Collector) -> None:
        with psycopg.connect(**params, autocommit=True) as listener:
            listener.execute(f"LISTEN {channel}")
            collector.connected.set()
            heard = time.monotonic()
            while not collector.finished and time.monotonic() - heard < IDLE_SECONDS:
                for notify in listener.notifies(timeout=0.2):
                    for batch in notify.payload.split():
                        due, count = batch.split(":")
                        collector.add([int(due)] * int(count))
                    heard = time.monotonic()
                if collector.expected is None:
                    heard = time.monotonic()  # the writer is still at it

    return follow, send, writer.close


def _system(name: str, make: Make, options: Options) -> dict[int, Figures]:
    results = {}
    for rate in (0, *options.rates):  # 0: the uncounted warm-up second
        follow, send, close = make(f"latency-{rate}-{time.time_ns()}")
        try:
            seconds = 1.0 if rate == 0 else options.seconds
            figures = _measure(follow, send, rate or 20, seconds, f"latency: {name} {rate}/s")
        finally:
            close()
        if rate:
            results[rate] = figures
    return results


def _over_http(url: str, headers: dict[str, str], prefix: str) -> Make:
    def make(label: str) -> tuple[Follow, Send, Callable[[], None]]:
        follow, send, writer = _http(url, f"{prefix}/{label}", headers)
        return follow, send, writer.close

    return make


def _streamdash(options: Options) -> dict[int, Figures]:
    _, key = project_create(name=f"bench-latency-{time.time_ns()}")
    headers = {"Authorization": f"Bearer {key}"}
    with servers.streamdash(options.workers) as server, httpx.Client() as client:
        run = client.post(f"{server.url}/api/v1/runs", json={"task_id": "latency"}, headers=headers)
        prefix = f"/api/v1/runs/{run.json()['id']}/streams"
        return _system(server.name, _over_http(server.url, headers, prefix), options)


def _peers(options: Options, say: Callable[[str], None]) -> dict[str, dict[int, Figures]]:
    if not options.reference:
        return {}
    why = reference.missing()
    if why is not None:
        say(f"note: {why}")
        return {}
    results = {}
    for mode in reference.MODES:
        with reference.reference_server(mode) as server:
            make = _over_http(server.url, {}, "/v1/stream")
            results[server.name] = _system(server.name, make, options)
    return results


def _cell(figures: Figures) -> str:
    """``p50 / p99 (requests a second)``, and how many chunks never arrived, if any."""
    lost = figures.sent - figures.received
    return f"{figures.p50_ms:.1f} / {figures.p99_ms:.1f} ({figures.requests:,.0f} req/s)" + (
        f" lost {lost}" if lost else ""
    )


def run(options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        raise RuntimeError("streambench latency needs PostgreSQL: set DATABASE_URL=postgres://…")
    systems = {"streamdash SSE": _streamdash(options)}
    systems["PostgreSQL NOTIFY"] = _system("PostgreSQL NOTIFY → LISTEN", _postgres, options)
    systems.update(_peers(options, say))
    say(
        f"append → live reader latency: p50 / p99 ms (appends a second the writer needed); "
        f"{options.seconds:g} s at each rate; streamdash workers: {options.workers}, "
        f"channel layer: {servers.channel_layer()}"
    )
    say(f"{'chunks/s':>8}  " + "  ".join(f"{name:>28}" for name in systems))
    for rate in options.rates:
        cells = [_cell(by_rate[rate]) for by_rate in systems.values()]
        say(f"{rate:>8}  " + "  ".join(f"{cell:>28}" for cell in cells))
    ours, base = systems["streamdash SSE"], systems["PostgreSQL NOTIFY"]
    for rate in options.rates:
        say(
            f"{rate:>8}/s: streamdash / PostgreSQL p50 = "
            f"{ratio(ours[rate].p50_ms, base[rate].p50_ms):.1f}x, "
            f"p99 = {ratio(ours[rate].p99_ms, base[rate].p99_ms):.1f}x"
        )
    return {
        "seconds": options.seconds,
        "workers": options.workers,
        "channel_layer": servers.channel_layer(),
        "systems": {
            name: {str(rate): asdict(f) for rate, f in by_rate.items()}
            for name, by_rate in systems.items()
        },
    }
