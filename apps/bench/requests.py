"""``streambench requests``: what one request costs, next to a daphne app that does nothing.

Three requests that stream URLs answer all day: a 1-chunk append (POST), a HEAD, and a catch-up
GET of a 20-chunk stream. One client sends each ``requests`` times in a row on one keep-alive
connection, first to the do-nothing ASGI app under daphne (``nullapp.py``: the floor, daphne's
own HTTP handling), then to streamdash under the same daphne: same client, paths, headers and
bodies. For each: p50 and p99 latency as the client sees it, and the server's CPU per request
(its /proc CPU time before and after, divided by the requests). The CPU ratio is the figure:
what streamdash adds to a request over daphne's own cost.

Third, unless ``--no-reference``: the same requests to the Durable Streams reference server in
memory (``reference.py``; its own stream URLs, no credentials): what the same requests cost
on a server that does the work in memory. In one run (load 5.3, PostgreSQL) the do-nothing
app and the reference server were level (a 1-chunk append p50 1.66 / 1.66 ms, CPU 0.80 /
0.77 ms), so daphne's own HTTP handling is not what separates streamdash from that server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from django.db import connection

from apps.bench import reference
from apps.bench import server as servers
from apps.bench.progress import Progress
from apps.bench.report import percentile, ratio
from apps.bench.server import BenchServer
from apps.projects.services import project_create

__all__ = ["Options", "run"]

JSON = {"Content-Type": "application/json"}
CATCH_UP_CHUNKS = 20
_WARM_UP = 20


@dataclass(frozen=True)
class Options:
    requests: int
    seconds: float  # at most this long for each kind of request
    workers: int
    reference: bool = True


@dataclass(frozen=True)
class Figures:
    count: int
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per request


Request = Callable[[httpx.Client, int], httpx.Response]


def _requests(append: str, catch_up: str) -> dict[str, Request]:
    return {
        "append 1 chunk": lambda c, i: c.post(append, content=b'[{"i":%d}]' % i, headers=JSON),
        "HEAD": lambda c, i: c.head(catch_up),
        f"GET {CATCH_UP_CHUNKS} chunks": lambda c, i: c.get(catch_up, params={"offset": "-1"}),
    }


def _measure(
    server: BenchServer, client: httpx.Client, request: Request, options: Options, label: str
) -> Figures:
    for i in range(_WARM_UP):
        request(client, i).raise_for_status()
    samples: list[float] = []
    cpu_before = server.cpu_seconds()
    deadline = time.monotonic() + options.seconds
    with Progress(label, options.requests) as progress:
        for i in range(_WARM_UP, _WARM_UP + options.requests):
            started = time.perf_counter()
            response = request(client, i)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
            progress.advance()
            if time.monotonic() > deadline:
                break
    cpu = server.cpu_seconds() - cpu_before
    return Figures(
        count=len(samples),
        p50_ms=percentile(samples, 50) * 1000,
        p99_ms=percentile(samples, 99) * 1000,
        cpu_ms=cpu / len(samples) * 1000,
    )


def _streams(url: str, key: str) -> tuple[str, str]:
    """A run with an empty stream to append to and a stream of 20 chunks to read."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        run = client.post("/api/v1/runs", json={"task_id": "bench-requests"}).json()
        append, catch_up = (f"/api/v1/runs/{run['id']}/streams/{k}" for k in ("append", "read"))
        return _filled(client, append, catch_up)


def _filled(client: httpx.Client, append: str, catch_up: str) -> tuple[str, str]:
    for path in (append, catch_up):
        client.put(path, headers=JSON).raise_for_status()
    chunks = [{"i": i} for i in range(CATCH_UP_CHUNKS)]
    client.post(catch_up, content=json.dumps(chunks), headers=JSON).raise_for_status()
    assert len(client.get(catch_up, params={"offset": "-1"}).json()) == CATCH_UP_CHUNKS
    return append, catch_up


def _reference(options: Options, say: Callable[[str], None]) -> dict[str, Figures] | None:
    if not options.reference:
        return None
    why = reference.missing()
    if why is not None:
        say(f"note: {why}")
        return None
    with reference.reference_server("memory") as server, httpx.Client(base_url=server.url) as c:
        paths = _filled(c, "/v1/stream/bench-append", "/v1/stream/bench-read")
        return _all(server, paths, None, options)


def _all(
    server: BenchServer, paths: tuple[str, str], key: str | None, options: Options
) -> dict[str, Figures]:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
        return {
            name: _measure(server, client, request, options, f"{server.name}: {name}")
            for name, request in _requests(*paths).items()
        }


def run(options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    _, key = project_create(name=f"bench-requests-{time.time_ns()}")
    with servers.null_app() as null:
        # The same paths and credentials; the do-nothing app looks at neither.
        fake = ("/api/v1/runs/run_x/streams/append", "/api/v1/runs/run_x/streams/read")
        baseline = _all(null, fake, key, options)
    with servers.streamdash(options.workers) as streamdash:
        figures = _all(streamdash, _streams(streamdash.url, key), key, options)
    peer = _reference(options, say)
    say(
        f"{options.requests} requests of each kind, one client, one keep-alive connection; "
        f"database: {connection.vendor}; streamdash workers: {options.workers}, channel layer: "
        f"{servers.channel_layer()}; server CPU from /proc (database CPU not included)"
    )
    say(
        f"{'request':16} {'streamdash p50 / p99':>21} {'CPU/req':>9}   "
        f"{'do-nothing app p50 / p99':>25} {'CPU/req':>9}   {'CPU ratio':>9}"
        + (f"   {'reference (memory) p50 / p99':>29} {'CPU/req':>9}" if peer else "")
    )
    for name, ours in figures.items():
        base = baseline[name]
        line = (
            f"{name:16} {ours.p50_ms:9.2f} / {ours.p99_ms:6.2f} ms {ours.cpu_ms:6.2f} ms   "
            f"{base.p50_ms:13.2f} / {base.p99_ms:6.2f} ms {base.cpu_ms:6.2f} ms   "
            f"{ratio(ours.cpu_ms, base.cpu_ms):9.1f}"
        )
        if peer:
            ref = peer[name]
            line += f"   {ref.p50_ms:17.2f} / {ref.p99_ms:6.2f} ms {ref.cpu_ms:6.2f} ms"
        say(line)
    return {
        "database": connection.vendor,
        "workers": options.workers,
        "channel_layer": servers.channel_layer(),
        "streamdash": {name: asdict(f) for name, f in figures.items()},
        "baseline": {name: asdict(f) for name, f in baseline.items()},
        "reference_memory": {name: asdict(f) for name, f in peer.items()} if peer else None,
        "cpu_ratio": {name: ratio(figures[name].cpu_ms, baseline[name].cpu_ms) for name in figures},
    }
