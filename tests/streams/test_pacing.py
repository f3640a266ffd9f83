"""The wake pacer: cheap rounds wake readers at once; after a long round, the appends that
arrive during the pause reach the readers in one wake; a round known to be long never runs
inside the caller (an append's request), is served in slices with the loop's other work
between them, and chunks that arrive during a round get a round after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from apps.streams.pacing import IMMEDIATE_SECONDS, MAX_DELAY_SECONDS, PACED_READERS, WakePacer


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # blocking on purpose: the work of many readers in one round


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def _counting_pacer(hold: float = 0.0) -> tuple[WakePacer, Callable[[], int]]:
    """A pacer whose rounds are counted, each holding the loop ``hold`` seconds."""
    wakes = 0

    def begin() -> None:
        nonlocal wakes
        wakes += 1
        if hold:
            _hold_the_loop(hold)

    return WakePacer(begin, lambda seconds: True), lambda: wakes


def test_pacer_wakes_at_once_while_rounds_are_cheap() -> None:
    async def scenario() -> int:
        pacer, wakes = _counting_pacer()
        for _ in range(5):
            pacer.soon(PACED_READERS)
            await _settle()
        return wakes()

    assert asyncio.run(scenario()) == 5


def test_pacer_never_runs_a_long_round_inside_its_caller() -> None:
    """An append that tells the hub of its chunks sends its own response before a round of
    many readers whose last round was long; a cheap round (one reader) runs at once."""

    async def scenario() -> list[int]:
        pacer, count = _counting_pacer(IMMEDIATE_SECONDS * 2)
        seen = []
        pacer.soon(1)  # cheap: at once
        seen.append(count())
        await _settle()
        await asyncio.sleep(MAX_DELAY_SECONDS * 2)  # the pause after that round is over
        pacer.soon(PACED_READERS)  # the last round was long: not inside this call
        seen.append(count())
        await _settle()
        seen.append(count())
        pacer.now()  # never inside the caller
        seen.append(count())
        await _settle()
        seen.append(count())
        return seen

    assert asyncio.run(scenario()) == [1, 1, 2, 2, 3]


@pytest.mark.parametrize(("readers", "wakes"), [(PACED_READERS, 2), (PACED_READERS - 1, 11)])
def test_pacer_batches_the_appends_that_arrive_after_a_long_round_of_many_readers(
    readers: int, wakes: int
) -> None:
    """Fewer readers than ``PACED_READERS`` are woken for every append, however long the
    round looked."""

    async def scenario() -> tuple[int, int]:
        # Rounds that hold the loop: many readers' work, as one reader.
        pacer, count = _counting_pacer(IMMEDIATE_SECONDS * 5)
        pacer.soon(readers)  # the first round is not paced: nothing is known of its cost yet
        await _settle()
        first = count()
        for _ in range(10):  # appends arriving while the next wake is due
            pacer.soon(readers)
            await _settle()
        await asyncio.sleep(0.2)
        return first, count()

    first, total = asyncio.run(scenario())
    assert first == 1
    assert total == wakes


def test_pacer_wakes_at_once_after_a_long_round_when_the_loop_had_its_share() -> None:
    """The pause counts from the end of the last round: an append after a quiet spell reaches
    many readers without waiting, however long their last round was."""

    async def scenario() -> tuple[int, int]:
        pacer, count = _counting_pacer(IMMEDIATE_SECONDS * 5)
        pacer.soon(PACED_READERS)
        await _settle()
        await asyncio.sleep(MAX_DELAY_SECONDS * 2)  # quiet: longer than any pause
        before = count()
        pacer.soon(PACED_READERS)
        await _settle()  # no timer runs out meanwhile: only the loop's next turns
        return before, count()

    assert asyncio.run(scenario()) == (1, 2)


def test_pacer_serves_a_round_in_slices_with_other_work_between() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        slices = iter([False, False, True])

        def serve(seconds: float) -> bool:
            order.append("slice")
            return next(slices)

        async def other_work() -> None:
            for _ in range(3):
                order.append("other")
                await asyncio.sleep(0)

        pacer = WakePacer(lambda: order.append("begin"), serve)
        pacer.soon(PACED_READERS)
        task = asyncio.create_task(other_work())
        for _ in range(10):
            await asyncio.sleep(0)
        await task
        return order

    order = asyncio.run(scenario())
    assert order.count("slice") == 3
    first, last = order.index("slice"), len(order) - 1 - order[::-1].index("slice")
    assert "other" in order[first:last]


@pytest.mark.parametrize("urgent", [False, True])
def test_pacer_runs_another_round_for_what_arrived_during_one(urgent: bool) -> None:
    async def scenario() -> int:
        count = 0
        slices = iter([False, True, True])
        pacer: WakePacer

        def begin() -> None:
            nonlocal count
            count += 1

        def serve(seconds: float) -> bool:
            if count == 1:
                # New chunks (or a close) while the round is under way.
                pacer.now() if urgent else pacer.soon(1)
            return next(slices)

        pacer = WakePacer(begin, serve)
        pacer.soon(1)
        for _ in range(20):
            await asyncio.sleep(0)
        return count

    assert asyncio.run(scenario()) == 2
