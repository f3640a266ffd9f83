"""What the System page shows (staff only): the server processes from their heartbeats
(``apps.dashboard.heartbeat``), storage by project, the retention schedule and last purge, the
channel layer, and an hour of appends per second and live readers."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce

from apps.dashboard.heartbeat import HOUR_MINUTES, stale_before
from apps.dashboard.models import ServerProcess
from apps.projects.models import Project
from streamdash.core.metrics import KINDS


@dataclass(frozen=True)
class ProcessRow:
    host: str
    pid: int
    started_at: dt.datetime
    beat_at: dt.datetime
    live: dict[str, int]
    readers: int
    watched: int
    appends: int
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    errors: list[str]
    layer_up: bool
    metrics_on: bool


@dataclass(frozen=True)
class ProjectStorage:
    name: str
    streams: int
    chunks: int
    bytes: int


@dataclass(frozen=True)
class Retention:
    interval_seconds: float
    batch_chunks: int
    tombstone_days: int
    last_run: dt.datetime | None
    last_chunks: int
    last_bytes: int
    last_seconds: float


@dataclass(frozen=True)
class Layer:
    backend: str
    shared: bool  # Redis: one layer for every process
    down: list[str]  # processes that cannot reach it


@dataclass(frozen=True)
class Minute:
    at: dt.datetime
    appends_per_second: float
    readers: int


@dataclass(frozen=True)
class System:
    processes: list[ProcessRow]
    storage: list[ProjectStorage]
    retention: Retention
    layer: Layer
    minutes: list[Minute]
    beat_seconds: float

    @property
    def readers(self) -> int:
        return sum(p.readers for p in self.processes)

    @property
    def appends(self) -> int:
        return sum(p.appends for p in self.processes)


def _ms(seconds: Any) -> float | None:
    return round(float(seconds) * 1000, 1) if seconds is not None else None


def _row(process: ServerProcess) -> ProcessRow:
    f = process.figures
    return ProcessRow(
        host=process.host,
        pid=process.pid,
        started_at=process.started_at,
        beat_at=process.beat_at,
        live={kind: int(f.get("live", {}).get(kind, 0)) for kind in KINDS},
        readers=int(f.get("readers", 0)),
        watched=int(f.get("watched", 0)),
        appends=int(f.get("appends", 0)),
        lag_p50_ms=_ms(f.get("lag_p50")),
        lag_p99_ms=_ms(f.get("lag_p99")),
        errors=[
            f"{dt.datetime.fromtimestamp(at, dt.UTC):%H:%M:%S} {what}"
            for at, what in f.get("errors", [])[-5:]
        ],
        layer_up=bool(f.get("layer_up", True)),
        metrics_on=bool(f.get("metrics", True)),
    )


def _storage() -> list[ProjectStorage]:
    projects = Project.objects.annotate(
        n=Count("streams"),
        chunks=Coalesce(Sum(F("streams__next_index") - F("streams__first_index")), 0),
        size=Coalesce(Sum("streams__byte_size"), 0),
    ).order_by("-size", "name")
    return [ProjectStorage(p.name, p.n, p.chunks, p.size) for p in projects[:50]]


def _retention(processes: list[ServerProcess]) -> Retention:
    purges = [p.figures["last_purge"] for p in processes if p.figures.get("last_purge")]
    last = max(purges, default=None, key=lambda purge: purge[0])
    return Retention(
        interval_seconds=float(settings.STREAMDASH_PURGE_INTERVAL_SECONDS),
        batch_chunks=int(settings.STREAMDASH_PURGE_BATCH_CHUNKS),
        tombstone_days=int(settings.STREAMDASH_PURGE_TOMBSTONE_DAYS),
        last_run=dt.datetime.fromtimestamp(last[0], dt.UTC) if last else None,
        last_chunks=int(last[1]) if last else 0,
        last_bytes=int(last[2]) if last else 0,
        last_seconds=float(last[3]) if last else 0.0,
    )


def _layer(rows: list[ProcessRow]) -> Layer:
    backend = str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).rsplit(".", 1)[-1]
    down = [f"{row.host}:{row.pid}" for row in rows if not row.layer_up]
    return Layer(backend=backend, shared=bool(settings.REDIS_URL), down=down)


def _minutes(processes: list[ServerProcess], now: float) -> list[Minute]:
    """The last hour per minute, summed over the processes: appends per second (the current
    minute over its elapsed seconds) and live readers (each process's most in that minute)."""
    current = int(now // 60 * 60)
    appends: dict[int, int] = {}
    readers: dict[int, int] = {}
    for process in processes:
        for minute, count, most in process.figures.get("samples", []):
            appends[minute] = appends.get(minute, 0) + count
            readers[minute] = readers.get(minute, 0) + most
    minutes = []
    for minute in range(current - (HOUR_MINUTES - 1) * 60, current + 60, 60):
        seconds = max(1.0, now - minute) if minute == current else 60.0
        minutes.append(
            Minute(
                at=dt.datetime.fromtimestamp(minute, dt.UTC),
                appends_per_second=round(appends.get(minute, 0) / seconds, 2),
                readers=readers.get(minute, 0),
            )
        )
    return minutes


def system_state() -> System:
    live = ServerProcess.objects.filter(beat_at__gte=stale_before())
    processes = list(live.order_by("host", "pid"))
    rows = [_row(p) for p in processes]
    return System(
        processes=rows,
        storage=_storage(),
        retention=_retention(processes),
        layer=_layer(rows),
        minutes=_minutes(processes, time.time()),
        beat_seconds=float(settings.STREAMDASH_SYSTEM_BEAT_SECONDS),
    )
