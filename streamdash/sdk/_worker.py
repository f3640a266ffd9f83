"""The worker: claims queued runs of its tasks (safely, with any number of workers) and runs
each with the task's bookkeeping. ``python -m streamdash.sdk worker --tasks myapp.tasks``.

While runs execute, the worker asks the server for their statuses every ``heartbeat``
seconds (one request for all of them); a run that became final meanwhile (canceled, most
likely) has its task cancelled, and with it the task's pipes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
from collections.abc import Iterable
from typing import Any

from streamdash.sdk._client import AsyncClient
from streamdash.sdk._core import Request, json_request
from streamdash.sdk._exceptions import StreamdashError
from streamdash.sdk._runs import FINAL_STATUSES
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
        heartbeat: float = 1.0,
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
        self.heartbeat: float = heartbeat
        self.name: str = name or f"{socket.gethostname()[:60]}-{os.getpid()}"
        self.completed: int = 0
        self.failed: int = 0
        self.canceled: int = 0
        self._running: dict[str, asyncio.Task[None]] = {}

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
        running = self._running
        started = 0
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        watcher = asyncio.create_task(self._watch(client))
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
                running[run["id"]] = job
                job.add_done_callback(functools.partial(_forget, running, run["id"]))
                idle_since = loop.time()
            if running:
                await asyncio.wait(set(running.values()))
        finally:
            watcher.cancel()
            if self.client is None:
                await client.aclose()
        return started

    async def check_runs(self, client: AsyncClient) -> None:
        """Cancel the tasks of the runs that are final on the server (or gone)."""
        run_ids = sorted(self._running)
        if not run_ids:
            return
        request = Request("GET", "/api/v1/runs/statuses", params={"ids": ",".join(run_ids)})
        statuses = (await client.json(request))["statuses"]
        for run_id in run_ids:
            status = statuses.get(run_id)
            job = self._running.get(run_id)
            if job is not None and (status is None or status in FINAL_STATUSES):
                logger.info("run %s is %s on the server: cancelling it", run_id, status)
                job.cancel()

    async def _watch(self, client: AsyncClient) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.check_runs(client)
            except StreamdashError:
                logger.warning("could not check the statuses of running runs", exc_info=True)

    async def _execute(
        self, client: AsyncClient, run: dict[str, Any], slots: asyncio.Semaphore
    ) -> None:
        try:
            logger.info("run %s (%s) started", run["id"], run["task_id"])
            await self.tasks[run["task_id"]].execute(
                run["id"],
                run.get("payload"),
                client=client,
                parent_id=run.get("parent_id"),
                root_id=run.get("root_id"),
            )
            self.completed += 1
            logger.info("run %s completed", run["id"])
        except asyncio.CancelledError:
            self.canceled += 1
            logger.info("run %s canceled", run["id"])
        except Exception:
            self.failed += 1
            logger.exception("run %s failed", run["id"])
        finally:
            slots.release()


def _forget(running: dict[str, asyncio.Task[None]], run_id: str, _: object) -> None:
    running.pop(run_id, None)
