"""Time helpers shared by the raw-SQL paths of several apps."""

from __future__ import annotations

import datetime as dt
from typing import Any


def aware_datetime(value: Any) -> dt.datetime | None:
    """A timezone-aware datetime from a database value (``None`` stays ``None``)."""
    if value is None:
        return None
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    # SQLite gives naive datetimes (or text); Django stores UTC there.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)
