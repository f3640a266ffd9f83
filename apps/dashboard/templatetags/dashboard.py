from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import template
from django.utils import timezone

from apps.runs.models import Run
from apps.streams.inputs import input_name as _input_name

register = template.Library()


@register.filter
def epoch(value: float) -> dt.datetime:
    """Seconds since the epoch → an aware datetime."""
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _human_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@register.filter
def run_duration(run: Run) -> str:
    if run.started_at is None:
        return "—"
    end = run.finished_at or timezone.now()
    return _human_seconds(max((end - run.started_at).total_seconds(), 0))


@register.filter
def seconds_between(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return ""
    return _human_seconds(max((end - start).total_seconds(), 0))


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def short_id(value: str) -> str:
    """``run_01J…XYZ`` → the last 8 characters, enough to tell runs apart in a table."""
    return f"…{value[-8:]}" if len(value) > 12 else value


@register.filter
def input_name(key: str) -> str | None:
    """The input's name when a stream is a run's input (key ``input:<name>``), else None."""
    return _input_name(key)
