"""The run a task is executing: its id, its client, and the writers and pipes it opened, so
that the run completes only after its pipes have finished (bounded); and its inputs' state, the
input listeners to stop when it ends, and the inputs it waits for."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamdash.sdk._client import AsyncClient
from streamdash.sdk._core import Request
from streamdash.sdk._writer import AsyncStreamWriter, WriterOptions

__all__ = ["RunContext", "current_run"]


@dataclass
class RunContext:
    run_id: str
    client: AsyncClient
    task_id: str = ""
    writer_options: WriterOptions = field(default_factory=WriterOptions)
    writers: dict[str, AsyncStreamWriter] = field(default_factory=dict)
    pipes: list[asyncio.Task[Any]] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)  # per input key, its receiver
    listeners: list[Callable[[], None]] = field(default_factory=list)  # each stops one on()
    waiting: list[str] = field(default_factory=list)  # the inputs being waited for

    def writer(self, key: str, register: Request | None = None) -> AsyncStreamWriter:
        writer = self.writers.get(key)
        if writer is None:
            writer = AsyncStreamWriter(
                self.client, self.run_id, key, self.writer_options, register=register
            )
            self.writers[key] = writer
        return writer

    async def finish(self, within: float) -> None:
        """Wait (at most ``within`` seconds) for every pipe, then flush every writer. Raises
        the first failure, or ``TimeoutError``."""
        async with asyncio.timeout(within):
            while pending := [p for p in self.pipes if not p.done()]:
                await asyncio.wait(pending)
            for pipe in self.pipes:
                pipe.result()
            for writer in list(self.writers.values()):
                await writer.aclose()

    def stop_listeners(self) -> None:
        """The task has ended: its input handlers get nothing more."""
        for stop in self.listeners:
            stop()
        self.listeners.clear()


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "streamdash_run", default=None
)


def current_run() -> RunContext | None:
    """The run being executed by this task (worker or ``run_local``), or None."""
    return _current.get()


def enter(context: RunContext) -> contextvars.Token[RunContext | None]:
    return _current.set(context)


def leave(token: contextvars.Token[RunContext | None]) -> None:
    _current.reset(token)
