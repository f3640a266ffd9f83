"""The supervisor behind ``manage.py serve``, with tiny shell workers instead of daphne.

Each supervisor runs in a subprocess of its own (it installs signal handlers and forks), which
the test stops with SIGTERM as an operator would.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.server import ROOT

SUPERVISE = """
import json, sys
from streamdash.core.probe import WorkerProbe
from streamdash.core.workers import Supervisor
command, workers, options = json.loads(sys.argv[1])
if options.pop("probe", False):
    # Each worker gets its probe socket's path in place of {socket}, as daphne's -u.
    options["probe"] = probe = WorkerProbe()
    template = command
    command = lambda n: [a.replace("{socket}", probe.socket(n)) for a in template]
try:
    Supervisor(command, workers, log=lambda line: print(line, flush=True), **options).run()
finally:
    if options.get("probe"):
        options["probe"].close()
"""

# A worker that answers the probes on its Unix socket: alive, but its database is away.
UNREADY_WORKER = """
import http.server, socketserver, sys

class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = (
            (200, b'{"status": "ok"}') if self.path == "/healthz"
            else (503, b'{"checks": {"database": "failing", "migrations": "ok"}}')
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

socketserver.UnixStreamServer(sys.argv[1], Answer).serve_forever()
"""


def _start(
    command: list[str], workers: int, options: dict[str, float | bool]
) -> subprocess.Popen[str]:
    spec = json.dumps([command, workers, options])
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, spec], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


def _supervise(
    command: list[str],
    until: Callable[[list[str]], bool],
    workers: int = 1,
    **options: float | bool,
) -> list[str]:
    """Supervise ``workers`` copies of ``command`` until its log (with the workers' output)
    satisfies ``until``, then SIGTERM the supervisor; it must exit 0. Returns the log lines."""
    process = _start(command, workers, options)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not until(lines):
            assert time.monotonic() < deadline, lines
            lines.append(process.stdout.readline().rstrip("\n"))
        process.send_signal(signal.SIGTERM)
        # Not communicate(): it reads the pipe's fd directly and would miss what readline()
        # has buffered already. EOF comes when the supervisor and its workers have exited.
        out = process.stdout.read()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, lines
    return lines + out.splitlines()


def _count(text: str) -> Callable[[list[str]], int]:
    return lambda lines: sum(text in line for line in lines)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids(lines: list[str]) -> list[int]:
    return [int(m[1]) for line in lines if (m := re.search(r"started \(pid (\d+)\)", line))]


def test_supervisor_backs_off_a_worker_that_dies_at_start():
    restarts = _count("restarting in")
    lines = _supervise(
        ["sh", "-c", "exit 3"], lambda lines: restarts(lines) >= 5, backoff=0.1, max_backoff=0.4
    )
    delays = [float(m[1]) for line in lines if (m := re.search(r"restarting in ([\d.]+) s", line))]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]  # doubling, capped: no spinning
    assert sum("exited with status 3" in line for line in lines) >= 5


def test_supervisor_replaces_a_worker_that_ran_a_while_at_once():
    restarts = _count("restarting in")
    lines = _supervise(["sleep", "0.3"], lambda lines: restarts(lines) >= 1, stable_seconds=0.2)
    assert any("restarting in 0.0 s" in line for line in lines), lines


def test_supervisor_forwards_sigterm_to_every_worker():
    ready = _count("ready")
    lines = _supervise(["sh", "-c", "echo ready; exec sleep 60"], lambda ls: ready(ls) >= 3, 3)
    pids = _pids(lines)
    assert len(pids) == 3
    assert "SIGTERM: stopping 3 workers" in lines
    assert not any(_alive(pid) for pid in pids)


def test_supervisor_kills_a_worker_that_ignores_sigterm_after_the_grace():
    stubborn = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 60"]
    started = time.monotonic()
    lines = _supervise(stubborn, lambda ls: _count("ready")(ls) >= 1, grace=0.5)
    assert time.monotonic() - started < 10
    assert any("still running after 0.5 s: SIGKILL" in line for line in lines), lines
    assert not _alive(_pids(lines)[0])


def test_supervisor_workers_die_with_a_killed_supervisor():
    process = _start(["sleep", "60"], 2, {})
    assert process.stdout is not None
    pids = _pids([process.stdout.readline(), process.stdout.readline()])
    process.kill()  # no chance to stop its workers: the kernel's parent-death signal does
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)
    assert len(pids) == 2


def test_supervisor_says_when_a_worker_is_up_and_why_it_is_not_ready():
    not_ready = _count("not ready")
    lines = _supervise(
        [sys.executable, "-c", UNREADY_WORKER, "{socket}"],
        lambda ls: not_ready(ls) >= 2,
        2,
        probe=True,
    )
    assert sum(bool(re.search(r"worker \d up \(pid \d+\) after", line)) for line in lines) == 2
    assert sum("up, not ready: database failing" in line for line in lines) == 2
    assert not any("ready (pid" in line for line in lines)  # never ready: the database is away


def test_supervisor_kills_a_worker_that_never_answers_healthz_and_backs_off():
    killed = _count("did not answer /healthz within 0.5 s: SIGKILL")
    restarts = _count("restarting in")
    lines = _supervise(
        ["sleep", "60"],
        lambda ls: killed(ls) >= 2 and restarts(ls) >= 2,
        probe=True,
        start_timeout=0.5,
        backoff=0.1,
    )
    assert any(
        "exited with signal SIGKILL" in line and "restarting in 0.1 s" in line for line in lines
    )
    assert any("restarting in 0.2 s" in line for line in lines), lines  # a failed start each time


# A worker that answers its probes three times, then never again: its loop is stuck.
STUCK_WORKER = """
import http.server, socketserver, sys, time

class Answer(http.server.BaseHTTPRequestHandler):
    answered = 0

    def do_GET(self):
        if Answer.answered >= 3:
            time.sleep(3600)
        Answer.answered += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

socketserver.UnixStreamServer(sys.argv[1], Answer).serve_forever()
"""


def test_supervisor_replaces_a_ready_worker_that_stops_answering_at_once():
    replaced = _count("started (pid")
    lines = _supervise(
        [sys.executable, "-c", STUCK_WORKER, "{socket}"],
        lambda ls: replaced(ls) >= 2,
        probe=True,
        hang_seconds=1.0,
    )
    first = _pids(lines)[0]
    said = [line for line in lines if "has not answered its probe for 1 s: SIGKILL" in line]
    assert said, lines
    assert f"(pid {first})" in said[0]
    exits = [line for line in lines if f"(pid {first}) exited with signal SIGKILL" in line]
    assert exits, lines
    assert "restarting in 0.0 s" in exits[0]  # it had been up: replaced at once
    assert not _alive(first)
