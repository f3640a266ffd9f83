"""The fan-out benchmark's writer, run in a process of its own (``spawn``: no Django, no
event loop, no GIL shared with a thousand readers): one chunk per request, either at a fixed
rate or as fast as the server acknowledges.

Send times are ``time.monotonic()``, which on Linux is the system-wide CLOCK_MONOTONIC: the
readers in the parent process compare them with their own receipt times.
"""

from __future__ import annotations

import json
import time

import httpx

_HEADERS = {"Content-Type": "application/json"}


def _chunk(n: int, size: int) -> bytes:
    head = json.dumps({"n": n, "p": ""})
    return json.dumps({"n": n, "p": "x" * max(0, size - len(head))}).encode()


def _next_index(response: httpx.Response) -> int:
    response.raise_for_status()
    return int(response.headers["Stream-Next-Index"])


def warm_up() -> None:
    """Import this module in the worker before anything is timed."""


def flat_out(url: str, path: str, key: str, seconds: float, size: int) -> tuple[int, float, int]:
    """Append one chunk a request, each after the last one's acknowledgement, for ``seconds``.
    Returns (appends, seconds, the stream's next index)."""
    appends, next_index = 0, 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            next_index = _next_index(
                client.post(path, content=_chunk(appends, size), headers=_HEADERS)
            )
            appends += 1
        return appends, time.monotonic() - began, next_index


def paced(
    url: str, path: str, key: str, rate: float, seconds: float, size: int
) -> tuple[list[tuple[int, float, float]], int]:
    """Append up to ``rate × seconds`` chunks, chunk i at ``i / rate`` seconds from the start,
    and none after ``seconds`` (a server slower than the rate gets fewer). Returns each chunk's
    (index, send time, acknowledgement time) and how many were sent more than one interval late
    (the writer could not keep the rate)."""
    count, interval = round(rate * seconds), 1 / rate
    sent: list[tuple[int, float, float]] = []
    late = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        began = time.monotonic()
        for n in range(count):
            due = began + n * interval
            now = time.monotonic()
            if now - began >= seconds:
                break
            if now < due:
                time.sleep(due - now)
            elif now - due > interval:
                late += 1
            sent_at = time.monotonic()
            index = _next_index(client.post(path, content=_chunk(n, size), headers=_HEADERS)) - 1
            sent.append((index, sent_at, time.monotonic()))
    return sent, late
