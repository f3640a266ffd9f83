"""N daphne processes on one listening socket (``python manage.py serve --workers N``).

The parent binds the socket once and hands it to every worker as an inherited file descriptor
(daphne's ``--fd``), so all workers accept from the same queue and the kernel gives each new
connection to one of them; a restarted worker picks up the same socket, and the port is never
closed while the server runs. Why processes: one daphne runs Python on one core (the GIL), so a
host with N cores needs N processes. They share nothing in memory: the live hub of each worker
learns of appends made through the others from the channel layer, which is why ``serve``
refuses N > 1 without Redis (DESIGN.md, "Known traps").

After starting the workers the parent only supervises:

- a worker is *up* once it answers ``GET /healthz`` on a Unix socket of its own
  (``streamdash/core/probe.py``: the shared port would let any worker answer); the log says
  when each is up, then when its ``/readyz`` first passes (or which checks fail until then).
  One that is not up within ``start_timeout`` seconds is killed.
- a worker that exits is started again. One that exits before it was up counts as a failed
  start, and consecutive failed starts wait ``backoff`` × 1, 2, 4 … up to ``max_backoff``
  seconds, so a worker that cannot boot (bad settings, a broken import) does not spin; a worker
  that was up and crashed is replaced at once. Without a probe (other commands than daphne's),
  a worker is up once it has lived ``stable_seconds``.
- a worker that was up and has answered none of its probes for ``hang_seconds`` is killed
  (SIGKILL) and replaced at once: its event loop is stuck (a blocking call, a deadlock), so it
  accepts connections from the shared socket and answers none of them. ``/healthz`` is answered
  on that loop before anything else, so a busy worker still answers it in time.
- SIGTERM or SIGINT: the parent closes its copy of the socket, forwards the signal to every
  worker, waits ``grace`` seconds for them to finish, then kills the stragglers (SIGKILL).
- each worker runs in a process group of its own, so a Ctrl-C in the terminal reaches the parent
  only (which forwards it once), and asks the kernel for SIGTERM when the parent dies (Linux
  ``PR_SET_PDEATHSIG``), so a supervisor killed with -9 leaves no orphan holding the port.

Metrics: the parent gives its workers one ``PROMETHEUS_MULTIPROC_DIR`` (removed when it stops),
so ``/metrics`` on any worker sums them all, and marks a worker that exited dead there
(``streamdash.core.metrics_export``).

Signals reach the loop through :func:`signal.set_wakeup_fd`: the handlers do nothing, the C-level
handler writes each signal's number to a pipe, and the loop ``select``s on that pipe. No lock is
ever taken inside a signal handler (an ``Event.set`` there can deadlock against the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from streamdash.core import metrics_export
from streamdash.core.probe import Answer, WorkerProbe
from streamdash.core.serving import APPLICATION, daphne_fd_command

__all__ = ["Supervisor", "cores", "listen", "serve"]

_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def cores() -> int:
    """The CPUs this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` that child processes inherit."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        if sys.platform == "linux":
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: nobody would supervise us
            os._exit(1)

    return preexec


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"status {returncode}"


# While a worker starts, how often the supervisor asks whether it is up, then ready; once it
# is ready, whether it still answers (at most this often, and four times per hang_seconds).
_UP_POLL_SECONDS = 0.1
_READY_POLL_SECONDS = 1.0
_LIVE_POLL_SECONDS = 5.0


@dataclass
class _Slot:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    up: bool = False
    ready: bool = False
    said_not_ready: str = ""
    probe_at: float = 0.0
    answered_at: float = 0.0


class Supervisor:
    """Keeps ``workers`` copies of ``command`` running until SIGTERM/SIGINT; see the module."""

    def __init__(
        self,
        command: Sequence[str] | Callable[[int], Sequence[str]],
        workers: int,
        *,
        log: Callable[[str], None],
        pass_fds: Sequence[int] = (),
        on_stop: Callable[[], None] = lambda: None,
        probe: WorkerProbe | None = None,
        start_timeout: float = 60.0,
        hang_seconds: float | None = 30.0,
        env: Mapping[str, str] | None = None,
        on_exit: Callable[[int], None] = lambda pid: None,
        stable_seconds: float = 10.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        grace: float = 10.0,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        # ``command(n)``: worker n's command line (daphne's names worker n's probe socket).
        self.command: Callable[[int], Sequence[str]]
        if callable(command):
            self.command = command
        else:
            fixed = list(command)
            self.command = lambda _number: fixed
        self.probe = probe
        self.start_timeout = start_timeout
        self.hang_seconds = hang_seconds
        self.slots = [_Slot(number) for number in range(1, workers + 1)]
        self.log = log
        self.pass_fds = tuple(pass_fds)
        self.on_stop = on_stop
        self.env = env
        self.on_exit = on_exit
        self.stable_seconds = stable_seconds
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.grace = grace

    def run(self) -> None:
        """Start the workers and supervise them until SIGTERM or SIGINT."""
        with self._signals() as wakeup:
            while True:
                now = time.monotonic()
                for slot in self.slots:
                    if slot.process is None and now >= slot.restart_at:
                        self._start(slot)
                    elif slot.process is not None and slot.process.poll() is not None:
                        self._exited(slot, slot.process.returncode, now)
                    elif slot.process is not None and now >= slot.probe_at:
                        self._check(slot, now)
                stop = self._wait(wakeup, self._next_deadline() - time.monotonic())
                if stop is not None:
                    self._stop(stop)
                    return

    def _start(self, slot: _Slot) -> None:
        if self.probe is not None:
            self.probe.clear(slot.number)
        slot.up = slot.ready = False
        slot.said_not_ready = ""
        slot.process = subprocess.Popen(
            self.command(slot.number),
            pass_fds=self.pass_fds,
            env=self.env,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        slot.started = time.monotonic()
        slot.probe_at = slot.started if self.probe is not None else float("inf")
        self.log(f"worker {slot.number} started (pid {slot.process.pid})")

    def _check(self, slot: _Slot, now: float) -> None:
        """Ask a starting worker whether it is up, then whether it is ready; a ready one
        whether it still answers (see the module)."""
        assert slot.process is not None
        assert self.probe is not None
        pid = slot.process.pid
        if slot.ready:
            self._check_alive(slot, now, self.probe.get(slot.number, "/healthz"))
            return
        if not slot.up:
            slot.probe_at = now + _UP_POLL_SECONDS
            answer = self.probe.get(slot.number, "/healthz")
            if answer is not None and answer[0] == 200:
                slot.up, slot.failures, slot.answered_at = True, 0, now
                self.log(f"worker {slot.number} up (pid {pid}) after {now - slot.started:.1f} s")
            elif now - slot.started > self.start_timeout:
                self.log(
                    f"worker {slot.number} (pid {pid}) did not answer /healthz within "
                    f"{self.start_timeout:g} s: SIGKILL"
                )
                slot.process.kill()
                slot.probe_at = float("inf")
            return
        answer = self.probe.get(slot.number, "/readyz")
        self._check_alive(slot, now, answer)
        if slot.probe_at == float("inf"):  # killed
            return
        slot.probe_at = now + _READY_POLL_SECONDS
        if answer is not None and answer[0] == 200:
            # From here on readiness is the load balancer's; the supervisor asks only
            # whether the worker answers at all.
            slot.ready = True
            slot.probe_at = self._next_live_probe(now)
            self.log(f"worker {slot.number} ready (pid {pid})")
            return
        checks = answer[1].get("checks") if answer is not None else None
        failing = ", ".join(
            sorted(k for k, v in checks.items() if v != "ok") if isinstance(checks, dict) else []
        )
        why = f"{failing} failing" if failing else "/readyz does not answer"
        if why != slot.said_not_ready:
            slot.said_not_ready = why
            self.log(f"worker {slot.number} (pid {pid}) up, not ready: {why}")

    def _next_live_probe(self, now: float) -> float:
        if self.hang_seconds is None:
            return float("inf")
        return now + min(_LIVE_POLL_SECONDS, self.hang_seconds / 4)

    def _check_alive(self, slot: _Slot, now: float, answer: Answer | None) -> None:
        """Kill a worker that was up and has not answered for ``hang_seconds``."""
        assert slot.process is not None
        if answer is not None:
            slot.answered_at = now
        elif self.hang_seconds is not None and now - slot.answered_at >= self.hang_seconds:
            self.log(
                f"worker {slot.number} (pid {slot.process.pid}) has not answered its probe "
                f"for {self.hang_seconds:g} s: SIGKILL"
            )
            slot.process.kill()
            slot.probe_at = float("inf")  # its exit restarts it
            return
        if slot.ready:
            slot.probe_at = self._next_live_probe(now)

    def _exited(self, slot: _Slot, returncode: int, now: float) -> None:
        assert slot.process is not None
        lived = now - slot.started
        if self.probe is None:
            slot.up = lived >= self.stable_seconds
        slot.failures = 0 if slot.up else slot.failures + 1
        delay = 0.0
        if slot.failures:
            delay = min(self.max_backoff, self.backoff * 2 ** (slot.failures - 1))
        self.log(
            f"worker {slot.number} (pid {slot.process.pid}) exited with {_describe(returncode)} "
            f"after {lived:.1f} s; restarting in {delay:.1f} s"
        )
        self.on_exit(slot.process.pid)
        slot.process = None
        slot.restart_at = now + delay

    def _next_deadline(self) -> float:
        waiting = [slot.restart_at for slot in self.slots if slot.process is None]
        probes = [slot.probe_at for slot in self.slots if slot.process is not None]
        # SIGCHLD wakes the loop when a worker exits; the timeout is only a safety net.
        return min([*waiting, *probes, time.monotonic() + 1.0])

    def _wait(self, wakeup: int, timeout: float) -> signal.Signals | None:
        """Sleep until a signal or ``timeout``; returns the stop signal that arrived, if any."""
        readable, _, _ = select.select([wakeup], [], [], max(0.0, timeout))
        if not readable:
            return None
        try:
            numbers = os.read(wakeup, 512)
        except BlockingIOError:
            return None
        stops = [signal.Signals(n) for n in numbers if n in _STOP_SIGNALS]
        return stops[0] if stops else None

    def _stop(self, signum: signal.Signals) -> None:
        running = [s.process for s in self.slots if s.process and s.process.poll() is None]
        self.log(f"{signum.name}: stopping {len(running)} workers")
        self.on_stop()
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
        deadline = time.monotonic() + self.grace
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(
                    f"worker pid {process.pid} still running after {self.grace:g} s: SIGKILL"
                )
                process.kill()
                process.wait()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[int]:
        """Route SIGTERM, SIGINT and SIGCHLD to a non-blocking pipe (see the module docstring)."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        handled = (*_STOP_SIGNALS, signal.SIGCHLD)
        previous = {n: signal.signal(n, lambda *_: None) for n in handled}
        old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        try:
            yield read
        finally:
            signal.set_wakeup_fd(old_fd)
            for n, handler in previous.items():
                signal.signal(n, handler)
            os.close(read)
            os.close(write)


def serve(
    host: str,
    port: int,
    *,
    workers: int,
    log: Callable[[str], None],
    grace: float = 10.0,
    hang_seconds: float | None = 30.0,
    application: str = APPLICATION,
) -> None:
    """Bind ``host:port``, run ``workers`` daphne processes on it until SIGTERM/SIGINT."""
    sock = listen(host, port)
    probe = WorkerProbe()
    try:
        with sock, metrics_export.multiprocess_dir() as env:
            log(f"serving {application} on {host}:{port} with {workers} daphne workers")
            supervisor = Supervisor(
                lambda number: daphne_fd_command(
                    sock.fileno(), sock.family, application, probe_socket=probe.socket(number)
                ),
                workers,
                log=log,
                pass_fds=[sock.fileno()],
                on_stop=sock.close,
                probe=probe,
                env=env,
                on_exit=lambda pid: metrics_export.process_dead(pid, env),
                grace=grace,
                hang_seconds=hang_seconds,
            )
            supervisor.run()
    finally:
        probe.close()
