"""The wake pacer: cheap rounds wake readers at once; after a long round, the appends that
arrive during the pause reach the readers in one wake."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.streams.pacing import IMMEDIATE_SECONDS, PACED_READERS, WakePacer


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # blocking on purpose: the work of many readers in one round


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_pacer_wakes_at_once_while_rounds_are_cheap() -> None:
    async def scenario() -> int:
        wakes = 0

        def wake() -> None:
            nonlocal wakes
            wakes += 1

        pacer = WakePacer(wake)
        for _ in range(5):
            pacer.soon(PACED_READERS)
            await _settle()
        return wakes

    assert asyncio.run(scenario()) == 5


@pytest.mark.parametrize(("readers", "wakes"), [(PACED_READERS, 2), (PACED_READERS - 1, 11)])
def test_pacer_batches_the_appends_that_arrive_after_a_long_round_of_many_readers(
    readers: int, wakes: int
) -> None:
    """Fewer readers than ``PACED_READERS`` are woken for every append, however long the
    round looked."""

    async def scenario() -> tuple[int, int]:
        wakes = 0
        changed = asyncio.Event()

        def wake() -> None:
            nonlocal wakes
            wakes += 1
            changed.set()

        async def reader() -> None:
            # A round that holds the loop: many readers' work, as one reader.
            while True:
                await changed.wait()
                changed.clear()
                _hold_the_loop(IMMEDIATE_SECONDS * 5)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        pacer = WakePacer(wake)
        pacer.soon(readers)  # the first round is not paced: nothing is known of its cost yet
        await _settle()
        first = wakes
        for _ in range(10):  # appends arriving while the next wake is due
            pacer.soon(readers)
            await _settle()
        await asyncio.sleep(0.2)
        task.cancel()
        return first, wakes

    first, total = asyncio.run(scenario())
    assert first == 1
    assert total == wakes
