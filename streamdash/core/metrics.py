"""Prometheus metrics (``/metrics``) and this process's own figures (the dashboard's System page).

The metric objects live in the kernel so that every layer can record into them without
importing another app; each hook below is one call at a point the code passes anyway. Names
carry the ``streamdash_`` prefix; ``streamdash/core/metrics_export.py`` renders them.

Cost: nothing here creates a label per chunk (the labelled children are made once, at import,
or cached per status and code), and nothing takes a lock per chunk beyond prometheus-client's
own per value: an append request costs one histogram observation, three counter increments and
one response count. ``STREAMDASH_METRICS=0`` turns all recording off. Measured on a 2-core
machine shared with other jobs (load average 9), PostgreSQL, Redis layer, one worker:

- ``streambench append --batches 200 --batch-size 100 --writers 2 --no-reference`` (metrics on
  and off in the same run, seven runs, either order): server CPU per append request 8.21 ms on,
  8.28 ms off (means; single runs spread 7.1 to 9.3 ms). Throughput was lower with metrics on
  in six pairs of seven (means 2,301 and 2,669 chunks/s; single runs 1,887 to 3,373), which
  the equal CPU does not explain; the machine's load moved by more than that between runs.
- ``streambench inprocess --requests 2000`` (CPU per request, ASGI app called directly), run
  twice each way: one-chunk append 3.39 and 3.58 ms on, 3.33 and 3.50 ms off; HEAD 1.32 and
  1.34 ms on, 1.13 and 1.33 ms off.
- ``timeit`` of the hooks on the same loaded machine: ``append_done`` 28 µs, ``response`` 6.5 µs,
  the response-counting wrapper (now ``metrics_export.counting``) 26 µs per request (an empty
  lambda call took 0.4 µs there, about ten times its usual cost), so about 2% of an append's
  CPU.

Several processes (``serve --workers N``): prometheus-client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR``, which the supervisor (``streamdash/core/workers.py``) creates for
its workers, removes at the end, and in which it marks a dead worker's live gauges dead. The live
reader and pool gauges are ``livesum``: the sum over the workers that are alive.

:data:`local` holds the figures of this process alone that the System page shows per process
(the heartbeat, ``apps/dashboard/heartbeat.py``): plain ints and bounded deques, no Prometheus.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "KINDS",
    "POOLS",
    "ProcessFigures",
    "append_done",
    "enabled",
    "lag",
    "layer_error",
    "live_reader",
    "local",
    "pool_usage",
    "purge_done",
    "rate_limited",
    "response",
    "ring_read",
    "stall_disconnect",
    "tail_recheck_found",
]

KINDS = ("sse", "long_poll", "websocket", "subscribe")
POOLS = ("pg_append", "read", "write")


def enabled() -> bool:
    """Read from the environment, not Django's settings: the flow-control server records a
    stall before Django is set up."""
    return _ENABLED


_ENABLED = os.environ.get("STREAMDASH_METRICS", "1").strip().lower() not in {"0", "false", "off"}

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

APPEND_REQUESTS = Counter("streamdash_append_requests", "Append requests on stream URLs")
APPEND_CHUNKS = Counter("streamdash_append_chunks", "Chunks appended")
APPEND_BYTES = Counter("streamdash_append_bytes", "Bytes appended")
APPEND_SECONDS = Histogram("streamdash_append_seconds", "Append latency", buckets=_LATENCY)
LIVE_READERS = Gauge(
    "streamdash_live_readers", "Open live reads", ["kind"], multiprocess_mode="livesum"
)
DELIVERY_LAG = Histogram(
    "streamdash_delivery_lag_seconds",
    "From a chunk's commit to its send to a live reader that was waiting for it",
    buckets=(*_LATENCY, 10.0),
)
RING_HITS = Counter("streamdash_hub_ring_hits", "Live reads served from the hub's ring")
RING_MISSES = Counter("streamdash_hub_ring_misses", "Live reads behind the ring (database)")
TAIL_RECHECK_FOUND = Counter(
    "streamdash_hub_tail_recheck_found", "Tail re-checks that found a change not yet notified"
)
LAYER_ERRORS = Counter("streamdash_channel_layer_errors", "Channel layer operations that failed")
RATE_LIMITED = Counter("streamdash_rate_limited", "Requests refused by a rate limit", ["limit"])
STALL_DISCONNECTS = Counter(
    "streamdash_backpressure_disconnects", "Responses cut off because the reader stopped reading"
)
RESPONSES = Counter("streamdash_responses", "HTTP responses", ["status", "code"])
PURGE_RUNS = Counter("streamdash_purge_runs", "Purge passes")
PURGE_CHUNKS = Counter("streamdash_purge_chunks", "Chunks purged")
PURGE_BYTES = Counter("streamdash_purge_bytes", "Bytes purged")
PURGE_SECONDS = Histogram(
    "streamdash_purge_seconds", "Purge pass duration", buckets=(0.01, 0.1, 1, 10, 60, 600)
)
POOL_IN_USE = Gauge(
    "streamdash_db_pool_in_use",
    "Database connections or threads busy",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "streamdash_db_pool_waiting",
    "Calls waiting for a database connection or thread",
    ["pool"],
    multiprocess_mode="livesum",
)

# Children made once: a label lookup takes prometheus-client's lock, a child does not.
_LIVE = {kind: LIVE_READERS.labels(kind) for kind in KINDS}
_LIMITED = {limit: RATE_LIMITED.labels(limit) for limit in ("writes", "live_reads")}
_IN_USE = {pool: POOL_IN_USE.labels(pool) for pool in POOLS}
_WAITING = {pool: POOL_WAITING.labels(pool) for pool in POOLS}
_RESPONSES: dict[tuple[int, str], Counter] = {}


@dataclass
class ProcessFigures:
    """This process's figures for the System page (see the module docstring)."""

    started: float = field(default_factory=time.time)
    appends: int = 0
    chunks: int = 0
    live: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    errors: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=10))
    # [finished at (epoch seconds), chunks, bytes, seconds] of this process's last purge.
    last_purge: list[float] | None = None

    def error(self, what: str) -> None:
        self.errors.append((time.time(), what))

    def lag_quantiles(self) -> tuple[float | None, float | None]:
        """p50 and p99 of the recent delivery lags, in seconds."""
        if not self.lags:
            return None, None
        ordered = sorted(self.lags)
        return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]


local = ProcessFigures()


def append_done(seconds: float, chunks: int, size: int) -> None:
    """One append request answered (``chunks`` and ``size`` appended, 0 when refused)."""
    if not _ENABLED:
        return
    APPEND_REQUESTS.inc()
    APPEND_SECONDS.observe(seconds)
    local.appends += 1
    if chunks:
        APPEND_CHUNKS.inc(chunks)
        APPEND_BYTES.inc(size)
        local.chunks += chunks


def live_reader(kind: str, delta: int) -> None:
    """A live read of ``kind`` (one of :data:`KINDS`) opened (+1) or ended (-1)."""
    if not _ENABLED:
        return
    _LIVE[kind].inc(delta)
    local.live[kind] += delta


def lag(seconds: float) -> None:
    """A batch reached a reader that was waiting at the tail, ``seconds`` after its commit."""
    if not _ENABLED:
        return
    seconds = max(0.0, seconds)
    DELIVERY_LAG.observe(seconds)
    local.lags.append(seconds)


def delivered_from_round(seconds: float, readers: int) -> None:
    """A batch written to ``readers`` readers waiting at the tail by one wake round (served from
    the ring), ``seconds`` after its commit: as many ``lag`` and ring hits, at a round's cost.
    With 1,000 SSE readers, one ``observe`` and one ``inc`` per reader were a sixth of a
    round's CPU (py-spy, ``streambench fanout``)."""
    if not _ENABLED or readers <= 0:
        return
    seconds = max(0.0, seconds)
    RING_HITS.inc(readers)
    # prometheus_client has no weighted observe: what ``Histogram.observe`` does, ``readers``
    # times over: its sum and one bucket (private attributes, unchanged since 0.4; the e2e
    # metrics test reads the count back).
    DELIVERY_LAG._sum.inc(seconds * readers)
    for bucket, bound in zip(DELIVERY_LAG._buckets, DELIVERY_LAG._upper_bounds, strict=True):
        if seconds <= bound:
            bucket.inc(readers)
            break
    local.lags.extend(itertools.repeat(seconds, min(readers, local.lags.maxlen or readers)))


def ring_read(hit: bool) -> None:
    if _ENABLED:
        (RING_HITS if hit else RING_MISSES).inc()


def tail_recheck_found() -> None:
    if _ENABLED:
        TAIL_RECHECK_FOUND.inc()


def layer_error(what: str) -> None:
    if _ENABLED:
        LAYER_ERRORS.inc()
        local.error(f"channel layer: {what}")


def rate_limited(limit: str) -> None:
    """A request refused by the ``writes`` or the ``live_reads`` limit."""
    if _ENABLED:
        _LIMITED[limit].inc()


def stall_disconnect() -> None:
    if _ENABLED:
        STALL_DISCONNECTS.inc()
        local.error("backpressure: a reader stopped reading and was cut off")


def response(status: int, code: str) -> None:
    """One HTTP response; ``code`` is the JSON error's code ("" for success)."""
    if not _ENABLED:
        return
    child = _RESPONSES.get((status, code))
    if child is None:
        child = _RESPONSES[(status, code)] = RESPONSES.labels(str(status), code)
    child.inc()
    if status >= 500:
        local.error(f"HTTP {status} {code}")


def purge_done(seconds: float, chunks: int, size: int) -> None:
    local.last_purge = [time.time(), chunks, size, round(seconds, 3)]
    if _ENABLED:
        PURGE_RUNS.inc()
        PURGE_SECONDS.observe(seconds)
        PURGE_CHUNKS.inc(chunks)
        PURGE_BYTES.inc(size)


def pool_usage(pool: str, in_use: int, waiting: int) -> None:
    """A pool's state now (set by the heartbeat and at each scrape, not per call)."""
    if _ENABLED:
        _IN_USE[pool].set(in_use)
        _WAITING[pool].set(waiting)
