"""The worker: claims queued runs of its tasks (safely, with any number of workers) and runs
each with the task's bookkeeping. ``python -m streamdash.sdk worker --tasks myapp.tasks``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Iterable
from typing import Any

from streamdash.sdk._client import AsyncClient
from streamdash.sdk._core import json_request
from streamdash.sdk._tasks import Task, registered_tasks

__all__ = ["Worker"]

logger = logging.getLogger("streamdash.sdk.worker")


class Worker:
    def __init__(
        self,
        tasks: Iterable[Task[Any, Any]] | None = None,
        *,
        client: AsyncClient | None = None,
        concurrency: int = 4,
        poll_interval: float = 0.5,
        name: str | None = None,
    ) -> None:
        self.tasks: dict[str, Task[Any, Any]] = (
            {t.id: t for t in tasks} if tasks is not None else registered_tasks()
        )
        if not self.tasks:
            raise ValueError("A worker needs at least one task (import the module defining it).")
        self.client = client
        self.concurrency: int = max(1, concurrency)
        self.poll_interval: float = poll_interval
        self.name: str = name or f"{socket.gethostname()[:60]}-{os.getpid()}"
        self.completed: int = 0
        self.failed: int = 0

    async def claim(self, client: AsyncClient) -> dict[str, Any] | None:
        body = {"task_ids": sorted(self.tasks), "worker": self.name}
        response = await client.request(json_request("POST", "/api/v1/runs/claim", body))
        return response.json() if response.status_code == 200 else None

    async def run(
        self,
        *,
        max_runs: int | None = None,
        idle_timeout: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> int:
        """Work until ``stop`` is set, ``max_runs`` runs were started, or nothing was queued
        for ``idle_timeout`` seconds. Waits for runs in progress; returns how many ran."""
        client = self.client or AsyncClient()
        stop = stop or asyncio.Event()
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        started = 0
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        try:
            while not stop.is_set() and (max_runs is None or started < max_runs):
                await slots.acquire()
                run = await self.claim(client)
                if run is None:
                    slots.release()
                    if idle_timeout is not None and loop.time() - idle_since >= idle_timeout:
                        break
                    pause = self.poll_interval * (0.5 + random.random())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                    continue
                started += 1
                job = asyncio.create_task(self._execute(client, run, slots))
                running.add(job)
                job.add_done_callback(running.discard)
                idle_since = loop.time()
            if running:
                await asyncio.wait(running)
        finally:
            if self.client is None:
                await client.aclose()
        return started

    async def _execute(
        self, client: AsyncClient, run: dict[str, Any], slots: asyncio.Semaphore
    ) -> None:
        try:
            logger.info("run %s (%s) started", run["id"], run["task_id"])
            await self.tasks[run["task_id"]].execute(run["id"], run.get("payload"), client=client)
            self.completed += 1
            logger.info("run %s completed", run["id"])
        except Exception:
            self.failed += 1
            logger.exception("run %s failed", run["id"])
        finally:
            slots.release()
