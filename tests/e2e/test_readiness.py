"""``/readyz`` follows its dependencies: 503 while PostgreSQL or Redis is stopped, 200 again
once it is back, from the same server process (no restart), and never a hung probe.

PostgreSQL: a throwaway cluster of this test's own (``.ci/services.sh``), stopped and started
with ``pg_ctl``. Redis: a ``redis-server`` of this test's own, stopped and started on the same
port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis

from tests.server import ROOT, Server, free_port, server_database

JSON = {"Content-Type": "application/json"}

pytestmark = pytest.mark.e2e

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
# Long enough for a busy CI machine; a probe that hangs past it fails the test.
PROBE_SECONDS = 5


def _services(script: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["bash", "-c", f"source .ci/services.sh && {script}"],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def throwaway_postgres() -> Iterator[tuple[str, Callable[[str], None]]]:
    """A PostgreSQL cluster of its own: its URL, and ``pg_ctl(action)`` (stop, start)."""
    out = _services(
        'start_postgres && echo "$DATABASE_URL $_SD_PG_DIR $_SD_PG_BINDIR $_SD_PG_PORT"'
    )
    url, folder, bindir, port = out.split()
    state = {"_SD_PG_DIR": folder, "_SD_PG_BINDIR": bindir, "_SD_PG_PORT": port}

    def pg_ctl(action: str) -> None:
        _services(
            f'_sd_as_postgres "$_SD_PG_BINDIR/pg_ctl" -D "$_SD_PG_DIR/data" '
            f'-l "$_SD_PG_DIR/postgres.log" -m fast -w -t 60 {action}',
            state,
        )

    try:
        yield url, pg_ctl
    finally:
        _services("stop_postgres", state)


class PrivateRedis:
    """A redis-server on a port of its own that can be stopped and started again there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required (apt-get install redis-server)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _readyz(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=PROBE_SECONDS)


def _until_readyz(server: Server, status: int, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = _readyz(server)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, (
            f"/readyz stayed {response.status_code}: {response.text}"
        )
        time.sleep(0.2)


def _assert_not_ready(response: httpx.Response, failing: str) -> None:
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][failing] == "failing"
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"]
    # Nothing about the set-up: no host, port, driver or error text.
    assert set(body["checks"].values()) <= {"ok", "failing"}
    for word in ("127.0.0.1", "postgres", "redis", "psycopg", "refused"):
        assert word not in response.text.lower()


@pytest.mark.skipif(not ON_POSTGRES, reason="the PostgreSQL pass stops a PostgreSQL")
def test_readyz_is_503_while_postgres_is_stopped_and_200_when_it_is_back() -> None:
    with throwaway_postgres() as (url, pg_ctl):
        server = Server(url, {"STREAMDASH_PUBLIC_DS": "1"})
        server.env.pop("REDIS_URL", None)
        server.manage("migrate", "--noinput", "-v0")
        with server:
            assert _readyz(server).status_code == 200
            pid = server.process.pid if server.process else None
            key = server.create_project()
            made = httpx.post(
                f"{server.url}/api/v1/runs",
                json={"task_id": "t"},
                headers={"Authorization": f"Bearer {key}"},
            )
            run_id = made.json()["id"]
            created = httpx.put(
                f"{server.url}/api/v1/runs/{run_id}/streams/s",
                headers={"Authorization": f"Bearer {key}", **JSON},
            )
            assert created.status_code == 201

            auth = {"Authorization": f"Bearer {key}"}
            stream = f"{server.url}/api/v1/runs/{run_id}/streams/s"
            pg_ctl("stop")
            _assert_not_ready(_until_readyz(server, 503), "database")
            # Stream requests degrade too: a JSON 503 once the pool's wait is over, not a hang.
            for method in ("HEAD", "POST", "GET"):
                refused = httpx.request(
                    method, stream, headers={**auth, **JSON}, content=b"[1]", timeout=20
                )
                assert refused.status_code == 503, (method, refused.text)
                assert refused.headers["Retry-After"]
                if method != "HEAD":
                    assert refused.json()["error"]["code"] == "unavailable"
            # Still alive meanwhile: a load balancer takes it out of rotation, not out of service.
            assert httpx.get(f"{server.url}/healthz", timeout=PROBE_SECONDS).status_code == 200

            pg_ctl("start")
            back = _until_readyz(server, 200)
            assert back.json()["checks"] == {
                "database": "ok",
                "migrations": "ok",
                "channel_layer": "ok",
            }
            assert server.process is not None
            assert server.process.pid == pid
            assert server.process.poll() is None


def test_readyz_is_503_while_redis_is_stopped_and_200_when_it_is_back() -> None:
    private = PrivateRedis()
    private.start()
    try:
        with server_database() as database:
            server = Server(database, {"REDIS_URL": private.url})
            server.manage("migrate", "--noinput", "-v0")
            with server:
                assert _readyz(server).status_code == 200
                pid = server.process.pid if server.process else None

                private.stop()
                _assert_not_ready(_until_readyz(server, 503), "channel_layer")

                private.start()
                _until_readyz(server, 200)
                assert server.process is not None
                assert server.process.pid == pid
                assert server.process.poll() is None
    finally:
        private.stop()
