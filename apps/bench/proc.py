"""A server process as Linux shows it in /proc: resident memory and threads
(``/proc/<pid>/status``), read at once or sampled in the background while a benchmark runs;
CPU time and child processes (``/proc/<pid>/stat``); which process holds the server side of a
loopback connection (``/proc/net/tcp`` and ``/proc/<pid>/fd``)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")


def status_field(pid: int, name: str) -> int:
    """One numeric field of ``/proc/<pid>/status`` (``VmRSS`` is in kB, ``Threads`` a count)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0])
    raise RuntimeError(f"/proc/{pid}/status has no {name}")


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: state, ppid, …"""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants (``manage.py serve`` and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = _stat(int(entry.name))
                if fields[0] != "Z":
                    children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (those still running)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = _stat(pid)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICKS


def connection_holder(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of our loopback TCP connection from
    ``client_port``: its socket inode from /proc/net/tcp, then the process whose fds have it."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if (local, remote) == (server_port, client_port):
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        return pid
    return None


def connections_by_holder(
    server_port: int, client_ports: set[int], pids: list[int]
) -> Counter[int]:
    """How many of our loopback connections from ``client_ports`` each of ``pids`` holds, as
    :func:`connection_holder` finds them, in one pass over /proc (for 1,000 readers)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if local == server_port and remote in client_ports:
            inodes.add(f"socket:[{fields[9]}]")
    held: Counter[int] = Counter()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        held[pid] += 1
    return held


def rss_bytes(pid: int) -> int:
    return status_field(pid, "VmRSS") * 1024


def threads(pid: int) -> int:
    return status_field(pid, "Threads")


@dataclass(frozen=True)
class RssFigures:
    """Resident memory around one read, in bytes: before it, the highest seen during it,
    right after it, and ``settle`` seconds after the reader went."""

    start: int
    peak: int
    end: int
    settled: int
    settle_seconds: float

    def as_mib(self) -> dict[str, float]:
        return {
            "rss_start_mib": round(self.start / MIB, 1),
            "rss_peak_mib": round(self.peak / MIB, 1),
            "rss_end_mib": round(self.end / MIB, 1),
            "rss_settled_mib": round(self.settled / MIB, 1),
            "rss_growth_peak_mib": round((self.peak - self.start) / MIB, 1),
            "rss_growth_settled_mib": round((self.settled - self.start) / MIB, 1),
        }


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a thread of its own, so a peak
    between two reads of the benchmark's own is not missed."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.start = rss_bytes(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def now(self) -> int:
        value = rss_bytes(self.pid)
        self.peak = max(self.peak, value)
        return value

    def settle(self, end: int, seconds: float) -> RssFigures:
        """Wait ``seconds`` (still sampling), then return the figures of this read."""
        time.sleep(seconds)
        return RssFigures(self.start, self.peak, end, self.now(), seconds)
