"""The in-server purge schedule: each server process purges every
``STREAMDASH_PURGE_INTERVAL_SECONDS`` (0 = off; then use ``manage.py purge_expired`` from cron).

Why started by the first request (``ensure_started``, which the ASGI entry calls through
``streamdash.core.onserve.OnServe``), rather than ``AppConfig.ready`` or a thread:
``ready()`` runs in every ``manage.py`` command, in tests and before the server's event loop
exists, so it cannot tell a server from a migration. The first request arrives on the server's
own event loop, in the process that will keep serving; only real servers put ``server`` in the
scope (test communicators do not). The loop task sleeps between passes and runs each purge on
a one-thread executor of its own with fresh connections, so it never queues behind (or holds)
Django's shared sync thread, and a failed pass is logged and retried at the next tick. It goes
there through ``apps.streams.threads``, so the purge's notifications (expired runs, deleted
streams) are handed to this server's event loop, where the hub listens.
Across processes one pass runs per interval: each tick first claims the interval in the
database (``purge_claim``) and only the claimant purges; the purge's PostgreSQL advisory lock
keeps it apart from a purge started by hand or cron. On SQLite there is usually one process
anyway; the claim holds there too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from apps.streams import threads
from streamdash.core import requestid

__all__ = ["ensure_started"]

logger = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None
_started: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_tasks: set[asyncio.Task[None]] = set()


def _purge_once(interval: float) -> None:
    from apps.retention.services import purge_claim, purge_expired

    if not purge_claim(every=interval):
        return  # another process purges this interval
    report = purge_expired()
    if report.chunks_deleted or report.runs_expired or report.runs_deleted:
        logger.info("scheduled purge: %s", report.summary())


async def _loop(interval: float) -> None:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamdash-purge")
    # Jitter spreads N processes (started together) over the interval.
    await asyncio.sleep(min(60.0, interval) * random.uniform(0.5, 1.0))
    while True:
        try:
            await threads.run_on(_executor, _purge_once, interval)
        except Exception:
            logger.exception("scheduled purge failed; retrying at the next interval")
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))


def ensure_started() -> bool:
    """Start this process's purge loop once per event loop. Returns True if started now."""
    interval = float(settings.STREAMDASH_PURGE_INTERVAL_SECONDS)
    loop = asyncio.get_running_loop()
    if interval <= 0 or loop in _started:
        return False
    _started.add(loop)
    task = loop.create_task(
        _loop(interval), name="streamdash-purge", context=requestid.outside_request()
    )
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return True
