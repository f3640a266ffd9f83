"""Servers under benchmark, each a process tree on a free loopback port.

- ``BenchServer(env)``: streamdash on one daphne (the command line of the tests and the demo),
  on the caller's database;
- :func:`streamdash`: the same with the rate limit and the in-server purge off (a limit is a
  policy, not a cost, and a purge pass in the middle of a measurement is noise), or
  ``manage.py serve --workers N`` for N > 1 (REDIS_URL must be set);
- :func:`null_app`: the do-nothing ASGI app (``nullapp.py``) under the same daphne;
- the Durable Streams reference server (``reference.py``).

``cpu_seconds()`` sums the user + system CPU of the whole tree (``serve``'s supervisor and its
workers); PostgreSQL's and Redis's own CPU are not in it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from django.conf import settings

from apps.bench import proc
from streamdash.core.serving import daphne_command

__all__ = ["BenchServer", "channel_layer", "free_port", "null_app", "streamdash"]

BENCH_ENV = {"STREAMDASH_RATE_LIMIT_PER_SECOND": "0", "STREAMDASH_PURGE_INTERVAL_SECONDS": "0"}


def channel_layer() -> str:
    """The channel layer the streamdash servers get from the environment."""
    return "Redis" if os.environ.get("REDIS_URL") else "in-memory"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchServer:
    """A server as a context manager: ``command`` must listen on ``port`` (by default: streamdash
    on one daphne, on a free port)."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        command: list[str] | None = None,
        port: int | None = None,
        name: str = "streamdash",
        workers: int = 1,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.command = command or daphne_command("127.0.0.1", self.port)
        self.name = name
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        # The server is reached at 127.0.0.1 only; with DEBUG=0 no host is allowed by default,
        # and the dashboard viewers' sockets (which check Host) would all be refused.
        self.env.setdefault("ALLOWED_HOSTS", "127.0.0.1")
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="streambench-", suffix=".log")  # noqa: SIM115

    def __enter__(self) -> BenchServer:
        self.process = subprocess.Popen(
            self.command,
            cwd=Path(settings.BASE_DIR),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        try:
            self._await_answer()
            if self.workers > 1:
                self._await_workers()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _failed(self, why: str) -> RuntimeError:
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace")[-3000:]
        return RuntimeError(f"{self.name}: {why}\n{tail}")

    def _await_answer(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failed(f"exited with status {self.process.returncode}")
            try:
                httpx.get(self.url + "/", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise self._failed("did not answer within 60 s")

    def _await_workers(self) -> None:
        """Open connections until each worker has accepted one: all of them are serving."""
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while len(seen) < self.workers:
            if time.monotonic() > deadline:
                raise self._failed(f"only {len(seen)} of {self.workers} workers answered")
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # kept alive
                sock.recv(1)
                worker = self.worker_of(sock.getsockname()[1])
            if worker is not None:
                seen.add(worker)
            else:
                time.sleep(0.05)

    def pids(self) -> list[int]:
        assert self.process is not None
        return proc.process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time the server's processes have used so far (user + system)."""
        return proc.cpu_seconds(self.pids())

    def worker_of(self, client_port: int) -> int | None:
        """The server process holding our loopback connection from ``client_port``."""
        return proc.connection_holder(self.port, client_port, self.pids())

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def streamdash(
    workers: int = 1, *, metrics: bool = True, env: dict[str, str] | None = None
) -> BenchServer:
    """streamdash on the caller's database: one daphne, or ``serve --workers N``; with its
    metrics recorded, or not (``STREAMDASH_METRICS=0``), and ``env`` on top."""
    env = {**BENCH_ENV, "STREAMDASH_METRICS": "1" if metrics else "0", **(env or {})}
    label = "" if metrics else ", metrics off"
    if workers == 1:
        return BenchServer(env, name=f"streamdash{label}")
    if not os.environ.get("REDIS_URL"):
        raise RuntimeError(
            f"--workers {workers} needs REDIS_URL (e.g. source .ci/services.sh; start_redis)"
        )
    port = free_port()
    serve = [sys.executable, "manage.py", "serve", "--workers", str(workers), "--port", str(port)]
    name = f"streamdash ×{workers}{label}"
    return BenchServer(env, command=serve, port=port, name=name, workers=workers)


def null_app() -> BenchServer:
    port = free_port()
    command = daphne_command("127.0.0.1", port, "apps.bench.nullapp:application")
    return BenchServer(command=command, port=port, name="do-nothing ASGI app")
