"""``manage.py serve``: N daphne workers on one socket, restarted when they die, stopped together.

Which worker holds a connection is read from the kernel, not guessed: the server side of each
loopback connection is found in /proc/net/tcp (by the client's port) and its socket inode among
the workers' file descriptors (/proc/<pid>/fd).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.bench.proc import connection_holder
from tests.server import ROOT, Server, free_port

pytestmark = pytest.mark.e2e

Connection = http.client.HTTPConnection
JSON = {"Content-Type": "application/json"}
METRICS_TOKEN = "serve-metrics-token"


def _children(parent: int) -> set[int]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == parent and stat[0] != "Z":
                    found.add(int(entry.name))
    return found


def _sockets(pid: int) -> set[str]:
    """The ``socket:[inode]`` names of a process's open sockets."""
    names = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                names.add(os.readlink(fd.path))
    return {name for name in names if name.startswith("socket:")}


def _worker_of(connection: Connection, server_port: int, workers: set[int]) -> int | None:
    """The worker process holding the server side of ``connection`` (after one response)."""
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    return connection_holder(server_port, client_port, sorted(workers))


def _until(what: str, check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def workers(self) -> set[int]:
        return _children(self.process.pid)

    def connect(self, path: str) -> tuple[Connection, int | None]:
        """A keep-alive connection that has had one answer, and the worker holding it."""
        connection = Connection("127.0.0.1", self.port, timeout=10)
        connection.request("HEAD", path)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        return connection, _worker_of(connection, self.port, self.workers())

    def answers(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.port}/ds/v1/stream/__ping__", timeout=2)
        except httpx.TransportError:
            return False
        return True


@contextlib.contextmanager
def serve(database_url: str, env: dict[str, str]) -> Iterator[Served]:
    """``manage.py serve --workers 2`` on a free port (public /ds/, and ``env``), killed
    afterwards with its workers."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=Server(database_url, {"STREAMDASH_PUBLIC_DS": "1", **env}).env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, port, Path(log.name))
    try:
        _until("the first answer", served.answers, seconds=90)
        yield served
    finally:
        workers = served.workers()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        served.log.unlink(missing_ok=True)


@pytest.fixture
def served(server_db: str, redis_url: str) -> Iterator[Served]:
    """``serve --workers 2``. The tail re-check is slowed to a minute so that only a
    cross-process notification (Redis) brings a chunk to the other worker."""
    env = {
        "REDIS_URL": redis_url,
        "STREAMDASH_TAIL_CHECK_SECONDS": "60",
        "STREAMDASH_METRICS_TOKEN": METRICS_TOKEN,
    }
    with serve(server_db, env) as running:
        yield running


def _connections_on_both(served: Served, path: str) -> dict[int, list[Connection]]:
    """Open connections until each of the two workers holds two (a worker still booting
    accepts nothing yet); returns them by worker pid."""
    by_worker: dict[int, list[Connection]] = {}
    deadline = time.monotonic() + 30
    while len(by_worker) < 2 or min(len(c) for c in by_worker.values()) < 2:
        assert time.monotonic() < deadline, f"connections by worker: {by_worker}"
        connection, pid = served.connect(path)
        assert pid is not None
        by_worker.setdefault(pid, []).append(connection)
    return by_worker


def _append(connection: Connection, path: str, body: bytes) -> None:
    connection.request("POST", path, body=body, headers=JSON)
    response = connection.getresponse()
    response.read()
    assert response.status in (200, 204), response.status


def _sse_chunks(connection: Connection, path: str, want: int) -> list[int]:
    connection.request("GET", f"{path}?offset=-1&live=sse&timeout=20")
    response = connection.getresponse()
    assert response.status == 200
    got: list[int] = []
    while len(got) < want:
        line = response.readline()
        assert line, f"the SSE response ended after {got}"
        if line.startswith(b"data:["):
            got.extend(json.loads(line[5:]))
    return got


def test_serve_two_workers_share_a_socket_restart_and_stop(served: Served):
    path = f"/ds/v1/stream/serve-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{served.port}{path}"
    assert httpx.put(url, headers=JSON).status_code == 201

    by_worker = _connections_on_both(served, path)
    (reader_pid, reader_side), (_, writer_side) = by_worker.items()

    # A reader on one worker gets what the other worker's connections append.
    def write() -> None:
        time.sleep(0.5)  # the reader has subscribed by then
        for n, connection in enumerate(writer_side):
            _append(connection, path, json.dumps([2 * n, 2 * n + 1]).encode())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    started = time.monotonic()
    got = _sse_chunks(reader_side[0], path, 2 * len(writer_side))
    writer.join(10)
    assert got == list(range(2 * len(writer_side)))
    assert time.monotonic() - started < 10  # not the 60 s tail re-check
    for connections in by_worker.values():
        for connection in connections:
            connection.close()

    # kill -9 a worker: the supervisor starts another, on the same listening socket.
    before = served.workers()
    os.kill(reader_pid, signal.SIGKILL)
    _until("a restarted worker", lambda: len(served.workers() - before) == 1)
    after = served.workers()
    assert reader_pid not in after
    assert len(after) == 2
    (restarted,) = after - before
    assert _sockets(restarted) & _sockets(served.process.pid)  # inherited the listener
    assert served.answers()
    # The supervisor sees the new worker up when it answers /healthz on its own socket.
    _until("the restarted worker up", lambda: served.log.read_text().count(" up (pid ") == 3)

    # SIGTERM: every worker stops, then the supervisor.
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=20) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in after)
    assert not served.answers()
    log = served.log.read_text()
    assert "exited with signal SIGKILL" in log
    assert "SIGTERM: stopping 2 workers" in log
    # Up: each worker answered /healthz on its own socket; ready: its /readyz passed.
    for number in (1, 2):
        assert re.search(rf"worker {number} up \(pid \d+\) after [\d.]+ s", log), log
        assert re.search(rf"worker {number} ready \(pid \d+\)", log), log
    # The access log has the users' requests, not the supervisor's probes of each worker.
    assert '"GET /ds/v1/stream/__ping__" 404' in log  # (what a SIGKILL cut off is lost)
    assert "GET /healthz" not in log
    assert "GET /readyz" not in log


def _scrape(connection: Connection) -> dict[str, float]:
    """Unlabelled samples and the SSE reader gauge, from the worker holding ``connection``."""
    connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    response = connection.getresponse()
    text = response.read().decode()
    assert response.status == 200, text
    return {
        sample.name + ("{sse}" if sample.labels.get("kind") == "sse" else ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels or sample.labels.get("kind") == "sse"
    }


def test_serve_metrics_sum_both_workers_and_forget_a_dead_ones_readers(served: Served):
    path = f"/ds/v1/stream/metrics-{uuid.uuid4().hex[:8]}"
    assert httpx.put(f"http://127.0.0.1:{served.port}{path}", headers=JSON).status_code == 201
    by_worker = _connections_on_both(served, path)
    (_, on_a), (pid_b, on_b) = by_worker.items()
    for n in range(3):
        _append(on_a[0], path, json.dumps([n]).encode())
    for n in range(2):
        _append(on_b[0], path, json.dumps([n]).encode())
    assert _sse_chunks(on_b[1], path, 5) == [0, 1, 2, 0, 1]  # a live reader on worker b

    # Whichever worker answers the scrape, it counts both workers' appends and readers.
    for connection in (on_a[0], on_b[0]):
        figures = _scrape(connection)
        assert figures["streamdash_append_requests_total"] == 5
        assert figures["streamdash_append_chunks_total"] == 5
        assert figures["streamdash_live_readers{sse}"] == 1

    # A worker killed with its reader: the supervisor marks it dead, its reader is no longer
    # counted, its appends still are.
    before = served.workers()
    os.kill(pid_b, signal.SIGKILL)
    _until("a restarted worker", lambda: len(served.workers() - before) == 1)
    figures = _scrape(on_a[0])
    assert figures["streamdash_live_readers{sse}"] == 0
    assert figures["streamdash_append_requests_total"] == 5
    for connection in (*on_a, *on_b):
        connection.close()


def test_serve_refuses_workers_without_redis(server_db: str):
    env = {k: v for k, v in Server(server_db).env.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "manage.py", "serve", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--workers 2 needs REDIS_URL" in done.stderr
    assert "channel layer is in memory, one per process" in done.stderr
