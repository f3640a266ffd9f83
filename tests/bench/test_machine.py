"""The machine line of every ``streambench`` run (``apps.bench.machine``): how the CPU time
that passed between two readings of ``/proc/stat`` was spent, stolen time included."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.bench.machine import cpu_times, parse_cpu_line, share_between


def test_the_split_between_two_readings_counts_stolen_time() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    before = parse_cpu_line("cpu  1000 0 500 8000 100 0 50 200 0 0")
    after = parse_cpu_line("cpu  1600 0 800 8500 100 0 50 600 0 0")
    share = share_between(before, after, cpus=2, load=(1.5, 1.0, 0.5))
    # 1,800 ticks passed: 900 busy (600 user + 300 system), 500 idle, 400 stolen.
    assert share.busy == pytest.approx(50.0)
    assert share.idle == pytest.approx(100 * 500 / 1800)
    assert share.iowait == 0.0
    assert share.steal == pytest.approx(100 * 400 / 1800)
    assert share.line() == (
        "machine during the run (2 CPUs): busy 50%, idle 28%, I/O wait 0%, stolen by the "
        "hypervisor 22%; load average at the end 1.5 / 1.0 / 0.5"
    )


def test_a_kernel_without_steal_time_reports_none_stolen() -> None:
    before = parse_cpu_line("cpu  10 0 10 80 0 0 0")
    after = parse_cpu_line("cpu  20 0 20 160 0 0 0")
    share = share_between(before, after, cpus=1, load=(0.0, 0.0, 0.0))
    assert (share.busy, share.idle, share.steal) == (20.0, 80.0, 0.0)


def test_a_per_cpu_line_is_refused() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        parse_cpu_line("cpu0 1 2 3 4 5 6 7 8 0 0")


def test_this_machines_proc_stat_is_read() -> None:
    first = cpu_times(Path("/proc/stat"))
    assert first.busy > 0
    assert first.idle > 0
    assert cpu_times().total >= first.total
