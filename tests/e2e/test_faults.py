"""Two server processes (``serve --workers 2``) under live readers and a writer, while their
Redis is killed and restarted, then their PostgreSQL stopped and started again: appends answer
JSON (503 while PostgreSQL is away), never HTML, never hang; live readers go on through the
hub's tail re-check and rejoin Redis; no acknowledged chunk is lost or doubled; the same worker
processes serve throughout.

The test runs its own Redis and PostgreSQL (``tests.services``): the CI's stay up for the other
tests. Every wait is bounded; the load is one writer and three readers on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.e2e.test_serve import Served, _until
from tests.e2e.test_shared_limits import serve
from tests.server import Server
from tests.services import PostgresServer, RedisServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="PostgreSQL stopped and started under the servers: the PostgreSQL pass",
    ),
]

JSON = {"Content-Type": "application/json"}
REQUEST_SECONDS = 15.0  # an answer later than this is a hang


@dataclass
class Writer:
    """Appends ``[n]`` for n = 0, 1, … one request at a time, on fresh connections (so both
    workers get some), recording what was acknowledged and every refusal."""

    url: str
    acked: list[int] = field(default_factory=list)
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # no answer at all
    stop: threading.Event = field(default_factory=threading.Event)
    n: int = 0

    def run(self) -> None:
        while not self.stop.is_set() and self.n < 5000:
            value, self.n = self.n, self.n + 1
            try:
                with httpx.Client(timeout=REQUEST_SECONDS) as client:
                    response = client.post(self.url, content=json.dumps([value]), headers=JSON)
            except httpx.TimeoutException as exc:
                self.hung.append(repr(exc))
                continue
            except httpx.TransportError as exc:
                self.dropped.append(repr(exc))
                continue
            if response.status_code in (200, 204):
                self.acked.append(value)
            else:
                kind = response.headers.get("content-type", "")
                self.refused.append((response.status_code, kind, response.text))
            time.sleep(0.02)


@dataclass
class Reader:
    """An SSE reader that resumes from its last offset whenever its response ends."""

    url: str
    values: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    offset: str = "-1"
    reconnects: int = 0

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                self._read()
            self.reconnects += 1
            time.sleep(0.2)

    def _read(self) -> None:
        params = {"offset": self.offset, "live": "sse"}
        timeout = httpx.Timeout(REQUEST_SECONDS, read=None)
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("GET", self.url, params=params) as response,
        ):
            if response.status_code != 200:
                return
            event = ""
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "data":
                    self.values.extend(json.loads(line[5:]))
                elif line.startswith("id:"):
                    self.offset = line[3:].strip()


@pytest.fixture
def services() -> Iterator[tuple[PostgresServer, RedisServer]]:
    postgres = PostgresServer().init()
    redis = RedisServer().start()
    try:
        Server(postgres.url).manage("migrate", "--noinput", "-v0")
        yield postgres, redis
    finally:
        redis.kill()
        postgres.remove()


def _stored(base: str, path: str) -> list[int]:
    response = httpx.get(f"{base}{path}", params={"offset": "-1"}, timeout=REQUEST_SECONDS)
    assert response.status_code == 200, response.text
    return list(json.loads(response.content))


def _started(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_faults_redis_then_postgres_away_under_load(
    services: tuple[PostgresServer, RedisServer],
) -> None:
    postgres, redis = services
    env = {
        "REDIS_URL": redis.url,
        "STREAMDASH_TAIL_CHECK_SECONDS": "0.5",
        "STREAMDASH_DB_WAIT_SECONDS": "2",
    }
    served: Served
    with serve(postgres.url, env) as served:
        base = f"http://127.0.0.1:{served.port}"
        path = f"/ds/v1/stream/faults-{uuid.uuid4().hex[:8]}"
        assert httpx.put(f"{base}{path}", headers=JSON).status_code == 201
        workers = served.workers()
        readers = [Reader(f"{base}{path}") for _ in range(2)]
        writer = Writer(f"{base}{path}")
        threads = [_started(r.run) for r in readers] + [_started(writer.run)]
        try:
            time.sleep(1.5)

            # Redis killed under the readers and the writer.
            redis.kill()
            mark = writer.n
            _until(
                "appends with Redis away",
                lambda: len(writer.acked) > 0 and writer.acked[-1] > mark + 10,
            )
            # A reader that starts now is served too (the tail re-check alone).
            late = Reader(f"{base}{path}")
            threads.append(_started(late.run))
            _until("the late reader", lambda: len(late.values) > mark)
            for reader in readers:
                _until("existing readers", lambda r=reader: bool(r.values) and r.values[-1] > mark)  # type: ignore[misc]

            # Redis back on the same port: the workers rejoin without a restart.
            redis.start()
            _until("the layer back", lambda: "channel layer is back" in served.log.read_text())

            # PostgreSQL stopped: appends are refused with JSON, none hangs.
            postgres.stop()
            refused_before = len(writer.refused)
            _until(
                "refusals while PostgreSQL is away",
                lambda: len(writer.refused) >= refused_before + 3,
            )
            postgres.start()
            mark = writer.n
            _until(
                "appends after PostgreSQL is back",
                lambda: bool(writer.acked) and writer.acked[-1] > mark + 10,
                seconds=60,
            )
        finally:
            writer.stop.set()
        threads[len(readers)].join(REQUEST_SECONDS + 5)

        stored = _stored(base, path)
        assert len(stored) == len(set(stored)), "a chunk was stored twice"
        assert set(writer.acked) <= set(stored), sorted(set(writer.acked) - set(stored))[:10]
        assert stored == sorted(stored)
        for reader in [*readers, late]:
            _until("readers to catch up", lambda r=reader: len(r.values) >= len(stored), seconds=30)  # type: ignore[misc]
            reader.stop.set()
            assert reader.values[: len(stored)] == stored
        assert writer.hung == []
        assert writer.refused, "PostgreSQL was away: some appends must have been refused"
        for status, content_type, body in writer.refused:
            assert status == 503, (status, body)
            assert content_type.startswith("application/json"), (content_type, body)
            assert json.loads(body)["error"]["code"] == "unavailable"
        assert served.workers() == workers, "a worker was restarted"
        log = served.log.read_text()
        assert "channel layer unavailable" in log
        assert "Exception inside application" not in log  # nothing escaped a response
