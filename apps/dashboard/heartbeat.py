"""Each server process's heartbeat for the System page: every ``STREAMDASH_SYSTEM_BEAT_SECONDS``
it rewrites its ``ServerProcess`` row with its figures (live readers, streams watched, delivery
lag, recent errors, the channel layer's state, its last purge, per-minute samples of the last
hour) and refreshes the database pool gauges of ``/metrics``.

Started like the purge schedule (``apps.retention.scheduler``), on a real server's first request
(``ensure_started``, which ``streamdash.core.onserve.OnServe`` calls): ``AppConfig.ready``
cannot tell a server from a migration. So a worker
appears on the page once it has served a request (a load balancer's health checks suffice).
The row goes through the database, not the channel layer, because the in-memory layer of a
single process is not shared and the page must see every worker of ``serve --workers N``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import weakref
from collections import deque
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.dashboard.models import ServerProcess
from apps.streams import hub, layer, threads
from apps.streams.pools import pools_record
from streamdash.core import metrics

__all__ = ["beat", "ensure_started", "figures", "stale_before"]

logger = logging.getLogger(__name__)
HOUR_MINUTES = 60
_started: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_tasks: set[asyncio.Task[None]] = set()
# [minute (epoch seconds), appends in it, most live readers seen in it], oldest first.
_samples: deque[list[int]] = deque(maxlen=HOUR_MINUTES + 1)
_counted = 0  # ``metrics.local.appends`` at the last sample


def _sample(now: float, readers: int) -> None:
    global _counted
    minute = int(now // 60 * 60)
    appends, _counted = metrics.local.appends - _counted, metrics.local.appends
    if _samples and _samples[-1][0] == minute:
        _samples[-1][1] += appends
        _samples[-1][2] = max(_samples[-1][2], readers)
    else:
        _samples.append([minute, appends, readers])


def figures() -> dict[str, Any]:
    """This process's figures now, as stored in its row (JSON)."""
    local = metrics.local
    readers = sum(local.live.values())
    now = time.time()
    _sample(now, readers)
    p50, p99 = local.lag_quantiles()
    down = layer.health.down_since
    return {
        "metrics": metrics.enabled(),
        "live": dict(local.live),
        "readers": readers,
        "watched": hub.watched_streams(),
        "appends": local.appends,
        "chunks": local.chunks,
        "lag_p50": p50,
        "lag_p99": p99,
        "errors": [[at, what] for at, what in local.errors],
        "layer_up": down is None,
        "layer_down_seconds": None if down is None else round(time.monotonic() - down, 1),
        "last_purge": local.last_purge,
        "pools": pools_record(),
        "samples": list(_samples),
    }


def stale_before() -> dt.datetime:
    """Rows last written before this belong to processes that are gone."""
    return timezone.now() - dt.timedelta(seconds=3 * settings.STREAMDASH_SYSTEM_BEAT_SECONDS)


def beat(data: dict[str, Any] | None = None) -> None:
    """Write this process's row now (``data``: its ``figures()``, taken now when None), and
    delete the rows of processes long gone."""
    now = timezone.now()
    started = dt.datetime.fromtimestamp(metrics.local.started, dt.UTC)
    ServerProcess.objects.update_or_create(
        host=socket.gethostname(),
        pid=os.getpid(),
        defaults={"started_at": started, "beat_at": now, "figures": data or figures()},
    )
    ServerProcess.objects.filter(beat_at__lt=now - dt.timedelta(minutes=10)).delete()


async def _loop(interval: float) -> None:
    while True:
        try:
            # The figures are taken here, on the loop that changes them; the write on a thread.
            await threads.run_in("write", beat, figures())
        except Exception:
            logger.exception("heartbeat failed; retrying at the next beat")
        await asyncio.sleep(interval)


def ensure_started() -> None:
    loop = asyncio.get_running_loop()
    if loop in _started:
        return
    _started.add(loop)
    interval = float(settings.STREAMDASH_SYSTEM_BEAT_SECONDS)
    if interval <= 0:
        return
    task = loop.create_task(_loop(interval), name="streamdash-heartbeat")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
