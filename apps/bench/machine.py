"""What the whole machine did while a benchmark ran: its CPUs' time split from ``/proc/stat``
(busy, idle, waiting on I/O, and *stolen*: time the hypervisor gave to other guests while
this one had work), and the load average at the end.

Why every ``streambench`` run reports it: on the shared 2-vCPU machine the issues' figures come
from, the same configuration gave 15,530 and 24,453 appended chunks/s two minutes apart
(``append --no-reference``, 2026-12-02 14:47–14:49 UTC), and ``vmstat`` showed 10–31% of
the CPU time stolen during the fan-out runs of that hour. A figure beside its baseline in the
same run stays comparable; a figure beside one from another run is comparable only if the
machine gave both about the same share, which this line shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuTimes", "Share", "cpu_times", "share_between"]

# /proc/stat's aggregate "cpu" line: user nice system idle iowait irq softirq steal guest
# guest_nice, in clock ticks. Guest time is counted in user time already.
_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time so far, in clock ticks, by kind (all CPUs together)."""

    busy: int  # user, nice, system, irq, softirq
    idle: int
    iowait: int
    steal: int

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.iowait + self.steal


@dataclass(frozen=True)
class Share:
    """How the machine's CPU time went between two readings, in percent of it."""

    cpus: int
    busy: float
    idle: float
    iowait: float
    steal: float
    load: tuple[float, float, float]  # the load average at the end

    def line(self) -> str:
        one, five, fifteen = self.load
        return (
            f"machine during the run ({self.cpus} CPUs): busy {self.busy:.0f}%, idle "
            f"{self.idle:.0f}%, I/O wait {self.iowait:.0f}%, stolen by the hypervisor "
            f"{self.steal:.0f}%; load average at the end {one:.1f} / {five:.1f} / {fifteen:.1f}"
        )


def parse_cpu_line(line: str) -> CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat``; kernels older than 2.6.11 lack steal."""
    name, *numbers = line.split()
    if name != "cpu":
        raise ValueError(f"not the aggregate cpu line of /proc/stat: {line!r}")
    ticks = dict(zip(_FIELDS, (int(n) for n in numbers), strict=False))
    busy = sum(ticks.get(k, 0) for k in ("user", "nice", "system", "irq", "softirq"))
    return CpuTimes(
        busy=busy,
        idle=ticks.get("idle", 0),
        iowait=ticks.get("iowait", 0),
        steal=ticks.get("steal", 0),
    )


def cpu_times(stat: Path = Path("/proc/stat")) -> CpuTimes:
    return parse_cpu_line(stat.read_text().splitlines()[0])


def share_between(
    before: CpuTimes,
    after: CpuTimes,
    *,
    cpus: int | None = None,
    load: tuple[float, float, float] | None = None,
) -> Share:
    """The split of the CPU time that passed from ``before`` to ``after``."""
    elapsed = after.total - before.total

    def percent(spent: int) -> float:
        return 100.0 * spent / elapsed if elapsed > 0 else 0.0

    return Share(
        cpus=cpus if cpus is not None else os.cpu_count() or 1,
        busy=percent(after.busy - before.busy),
        idle=percent(after.idle - before.idle),
        iowait=percent(after.iowait - before.iowait),
        steal=percent(after.steal - before.steal),
        load=load if load is not None else os.getloadavg(),
    )
