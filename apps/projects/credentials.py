"""Verified credentials, remembered for a moment, and forgotten at once when a key is revoked.

Every request on a stream URL authenticates. Verifying an API key is one SQL statement and a
JWT an HMAC and a claims check; together with building the principal that was about a third of
a HEAD's server CPU (0.9 of 2.9 ms, in process on PostgreSQL). So a verified credential is kept
here for ``STREAMDASH_CREDENTIAL_CACHE_SECONDS`` (1 s by default; 0 turns the cache off),
keyed by the credential itself, per process.

Revocation must still act at once, on open connections too:
- ``api_key_revoke`` calls ``key_revoked`` on commit, in its own process, and broadcasts the key
  id over the channel layer; every process's hub passes it to ``key_revoked`` as well;
- live readers hold their key in ``live_keys`` and ask ``is_revoked`` whenever they wake; the
  hub re-checks the held keys against the database once a second (``revoked_among``), so a
  revocation whose broadcast was lost still ends them within about a second.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings

_MAX_ENTRIES = 10_000


class _Cache:
    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, bool], tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bool]) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: tuple[str, bool], value: Any, ttl: float) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > _MAX_ENTRIES:
                self._entries.popitem(last=False)

    def drop(self, matches: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k, (_, v) in self._entries.items() if matches(v)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Uncached(Exception):
    """Raised instead of verifying, where the database may not be used (``cached_only``)."""


# Set by async callers that may not touch the database: a miss raises Uncached, and the
# caller verifies on a thread instead.
_cached_only: ContextVar[bool] = ContextVar("streamdash_cached_only", default=False)

_cache = _Cache()
_revoked: set[int] = set()
_live: Counter[int] = Counter()
_live_lock = threading.Lock()


def remembered(credential: str, allow_public: bool, verify: Callable[[], Any]) -> Any:
    """The principal for ``credential``: from the cache, else ``verify()`` (and cached)."""
    ttl = float(settings.STREAMDASH_CREDENTIAL_CACHE_SECONDS)
    key = (credential, allow_public)
    principal = _cache.get(key) if ttl > 0 else None
    if principal is None:
        if _cached_only.get():
            raise Uncached
        principal = verify()
        if ttl > 0:
            _cache.put(key, principal, ttl)
    return principal


@contextmanager
def cached_only() -> Iterator[None]:
    """Within this block a credential that is not cached raises ``Uncached``."""
    token = _cached_only.set(True)
    try:
        yield
    finally:
        _cached_only.reset(token)


def forget_key(key_id: int) -> None:
    """Forget every cached principal of this API key: its next request is verified again."""
    _cache.drop(lambda principal: getattr(principal, "key_id", None) == key_id)


def key_revoked(key_id: int) -> None:
    """The key is revoked (committed): forget it and end its live connections."""
    _revoked.add(key_id)
    forget_key(key_id)


def is_revoked(key_id: int | None) -> bool:
    return key_id is not None and key_id in _revoked


@contextmanager
def live_key(key_id: int | None) -> Iterator[None]:
    """Hold an API key for the life of a live connection (re-checked by the hub)."""
    if key_id is None:
        yield
        return
    with _live_lock:
        _live[key_id] += 1
    try:
        yield
    finally:
        with _live_lock:
            _live[key_id] -= 1
            if _live[key_id] <= 0:
                del _live[key_id]


def live_keys() -> list[int]:
    with _live_lock:
        return list(_live)


def forget_all() -> None:
    """Drop the cache and the revocation marks (tests, whose database rolls back)."""
    _cache.clear()
    _revoked.clear()
