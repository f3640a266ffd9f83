"""The database pools' state for ``/metrics`` and the System page: the psycopg async pool of
the append path (``pg_append``) and the ``read`` and ``write`` thread pools (``threads``)."""

from __future__ import annotations

from apps.streams import pg_append, threads
from streamdash.core import metrics


def pools_record() -> dict[str, tuple[int, int]]:
    """Set the pool gauges from the pools' state now (in use, waiting); returns it."""
    usage = {
        "pg_append": pg_append.usage(),
        "read": threads.usage("read"),
        "write": threads.usage("write"),
    }
    for pool, (in_use, waiting) in usage.items():
        metrics.pool_usage(pool, in_use, waiting)
    return usage
