"""Run ids: ``run_`` + a ULID, so ids sort by creation time (keyset pages, newest first).

Monotonic within a process: two ids made in the same millisecond still sort in the order they
were made (the random part is incremented), so "newest first" never shuffles a burst.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RUN_ID_RE = re.compile(f"run_[{_CROCKFORD}]{{26}}")
_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid() -> str:
    global _last
    with _lock:
        millis = int(time.time() * 1000)
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
        else:
            random_part = secrets.randbits(79)  # headroom for increments within a millisecond
        _last = (millis, random_part)
    return _encode((millis << 80) | random_part)


def new_run_id() -> str:
    return f"run_{ulid()}"


def is_run_id(value: str) -> bool:
    """Whether ``value`` has the shape of a run id. Anything else names no run, and is answered
    without a query (a NUL in it would make PostgreSQL refuse the query itself)."""
    return _RUN_ID_RE.fullmatch(value) is not None
