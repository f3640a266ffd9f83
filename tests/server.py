"""A real streamdash server for end-to-end tests: daphne in a subprocess on loopback.

The server gets a database of its own (a temporary SQLite file, or a fresh PostgreSQL database
next to the test database when DATABASE_URL points at PostgreSQL), migrated by the subprocess,
so tests talk to it only as users do: over HTTP, SSE and WebSocket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from streamdash.core.serving import daphne_command

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_database() -> Iterator[str]:
    """A DATABASE_URL for a server under test, removed afterwards."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = f"streamdash_e2e_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(base)
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with tempfile.TemporaryDirectory(prefix="streamdash-e2e-") as folder:
            yield f"sqlite:///{folder}/db.sqlite3"


class Server:
    """One daphne process. ``env`` overrides settings (e.g. STREAMDASH_PUBLIC_DS=1)."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            # A real server runs the production settings, not the test suite's.
            "DJANGO_SETTINGS_MODULE": "streamdash.settings",
            "DEBUG": "1",
            "SECRET_KEY": "e2e-test-secret-key-not-for-production-0123456789",
            "STREAMDASH_LONG_POLL_TIMEOUT": "2",
            "STREAMDASH_TAIL_CHECK_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        # Lives as long as the server (restarts append to it); read when daphne fails to start.
        self.log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)  # noqa: SIM115

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def start(self) -> Server:
        self.process = subprocess.Popen(
            daphne_command("127.0.0.1", self.port),
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{Path(self.log.name).read_text()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not start:\n{Path(self.log.name).read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self) -> None:
        """Stop and start on the same port: every open connection drops."""
        self.stop()
        self.start()

    def create_project(self, name: str | None = None, *, members: tuple[str, ...] = ()) -> str:
        """A new project's secret key, via the documented command; ``members`` are dashboard
        users who see the project."""
        flags = [arg for username in members for arg in ("--member", username)]
        return self.manage("createproject", name or f"p-{uuid.uuid4().hex[:8]}", *flags).strip()

    def client(self, *, timeout: float = 10) -> httpx.Client:
        """An HTTP client for this server with a new project's key (close it, or use it in a
        ``with`` block)."""
        key = self.create_project()
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def unread_get(self, path: str) -> socket.socket:
        """A GET of ``path`` whose client then reads nothing, with a tiny receive buffer: a
        reader that stopped reading."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return sock
