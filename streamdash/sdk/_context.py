"""The run a task is executing: its id, its parent and root, its client, and the writers and
pipes it opened, so that the run completes only after its pipes have finished (bounded) and a
canceled run stops them; and its inputs' state, the input listeners to stop when it ends, and
the inputs it waits for."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamdash.sdk._client import AsyncClient
from streamdash.sdk._core import Request
from streamdash.sdk._exceptions import ConfigurationError
from streamdash.sdk._pipe import Pipe
from streamdash.sdk._writer import AsyncStreamWriter, WriterOptions

__all__ = ["RunContext", "current_run", "resolve_target"]

logger = logging.getLogger("streamdash.sdk")
# How long stopped pipes get to close their sources (a generator's ``finally`` may await).
_STOP_GRACE = 5.0


@dataclass
class RunContext:
    run_id: str
    client: AsyncClient
    task_id: str = ""
    parent_id: str | None = None
    root_id: str | None = None  # the top of the tree: None when the run has no parent
    writer_options: WriterOptions = field(default_factory=WriterOptions)
    writers: dict[str, AsyncStreamWriter] = field(default_factory=dict)
    pipes: list[Pipe[Any]] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)  # per input key, its receiver
    listeners: list[Callable[[], None]] = field(default_factory=list)  # each stops one on()
    waiting: list[str] = field(default_factory=list)  # the inputs being waited for
    # Set when the run is canceled. Async code is cancelled; a sync task (on its own thread)
    # can pass this to ``pipe_sync(cancel=...)`` / ``read_sync(cancel=...)`` or look at it.
    canceled: threading.Event = field(default_factory=threading.Event)

    def writer(self, key: str, register: Request | None = None) -> AsyncStreamWriter:
        writer = self.writers.get(key)
        if writer is None:
            writer = AsyncStreamWriter(
                self.client, self.run_id, key, self.writer_options, register=register
            )
            self.writers[key] = writer
        return writer

    def target(self, target: str) -> str:
        """The run id that ``target`` names: "self", "parent", "root", or a run id."""
        if target == "self":
            return self.run_id
        if target == "root":
            return self.root_id or self.run_id
        if target == "parent":
            if self.parent_id is None:
                raise ConfigurationError(
                    f"Run {self.run_id} has no parent: it was not triggered from another run."
                )
            return self.parent_id
        return target

    @property
    def unsent(self) -> int:
        """Chunks handed to a writer of this run's pipes and not acknowledged yet."""
        writers = {id(w): w for w in self.writers.values()}
        writers.update((id(p.writer), p.writer) for p in self.pipes)
        return sum(w.submitted - w.acknowledged for w in writers.values())

    async def finish(self, within: float) -> None:
        """Wait (at most ``within`` seconds) for every pipe, then flush every writer. Raises
        the first failure. Past ``within`` the run is done waiting, as the v1 seed has it: the
        pipes are stopped, a warning says how many chunks were not delivered, and the caller
        completes the run (which closes its streams)."""
        deadline = asyncio.timeout(within)
        try:
            async with deadline:
                while pending := [p.task for p in self.pipes if not p.task.done()]:
                    await asyncio.wait(pending)
                for pipe in self.pipes:
                    if not pipe.task.cancelled():
                        pipe.task.result()
                for writer in list(self.writers.values()):
                    await writer.aclose()
        except TimeoutError:
            if not deadline.expired():
                raise  # a pipe's own TimeoutError, not the deadline
            logger.warning(
                "run %s: its pipes did not finish within %s s; %d chunks were not delivered, "
                "and the run ends without them.",
                self.run_id,
                within,
                self.unsent,
            )
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop every pipe and writer still running, dropping what is not delivered. Their
        failures are collected here, so none is reported as never retrieved."""
        tasks = [p.task for p in self.pipes if not p.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_GRACE)
        for pipe in self.pipes:
            pipe.task.add_done_callback(_retrieve)
            pipe.writer.abort()
        for writer in self.writers.values():
            writer.abort()

    def stop_listeners(self) -> None:
        """The task has ended: its input handlers get nothing more."""
        for stop in self.listeners:
            stop()
        self.listeners.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A stopped pipe's failure is part of the run's outcome, already recorded."""
    if not task.cancelled():
        task.exception()


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "streamdash_run", default=None
)


def current_run() -> RunContext | None:
    """The run being executed by this task (worker or ``run_local``), or None."""
    return _current.get()


def resolve_target(target: str) -> str:
    """``target`` ("self", "parent", "root" or a run id) as a run id. The names need a task."""
    context = current_run()
    if context is not None:
        return context.target(target)
    if target in ("self", "parent", "root"):
        raise ConfigurationError(f"target={target!r} names a run relative to a task's run.")
    return target


def enter(context: RunContext) -> contextvars.Token[RunContext | None]:
    return _current.set(context)


def leave(token: contextvars.Token[RunContext | None]) -> None:
    _current.reset(token)
