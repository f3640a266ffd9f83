"""Process-wide work that starts with a real server's first request on an event loop.

The System page's heartbeat (``apps.dashboard.heartbeat``) and the retention purge schedule
(``apps.retention.scheduler``) are loops that belong to a serving process. ``AppConfig.ready``
cannot tell a server from a migration, a test or a ``manage.py`` command; the first request can:
it arrives on the server's own event loop, in the process that keeps serving, and only real
servers put ``server`` in the scope (test clients and communicators do not).

``OnServe(*starters)`` is called with every request's scope by the ASGI entry
(``streamdash.entry``); on the first one from a server on each event loop it calls every
starter, in order, and afterwards costs a set lookup.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OnServe"]


class OnServe:
    """``OnServe(heartbeat.ensure_started, scheduler.ensure_started)(scope)``: see the module."""

    def __init__(self, *starters: Callable[[], object]) -> None:
        self.starters = starters
        self._started: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def __call__(self, scope: Mapping[str, Any]) -> None:
        if scope.get("server") is None:
            return
        loop = asyncio.get_running_loop()
        if loop in self._started:
            return
        self._started.add(loop)
        for start in self.starters:
            start()
