"""Input streams: data sent INTO a run (an approval, a "stop" click) while it executes.

An input is an ordinary run stream whose key is ``input:<name>``, so everything a stream has —
durable chunks, the idempotent producer, live reads, the dashboard's pages, retention — an
input has too. What differs is who may write it (a browser token scoped ``write:inputs:<run>``
may append, nothing else) and that a sender never has to create it: the first send does.
"""

from __future__ import annotations

import re

from apps.projects.models import Project
from apps.streams.models import Stream
from apps.streams.services import StreamConfig, StreamRef, stream_create, stream_lookup
from streamdash.core.errors import BadRequest

__all__ = ["INPUT_PREFIX", "input_key", "input_name", "input_stream_ensure"]

INPUT_PREFIX = "input:"
JSON = "application/json"
_NAME_RE = re.compile(r"[A-Za-z0-9._~-]{1,190}")


def input_key(name: str) -> str:
    """The stream key of input ``name``; 400 for a name that is not one."""
    if not _NAME_RE.fullmatch(name):
        raise BadRequest(
            f"Input name {name!r} is not valid: use 1–190 letters, digits and . _ ~ -",
            input=name,
        )
    return INPUT_PREFIX + name


def input_name(key: str) -> str | None:
    """The input's name when ``key`` is an input stream's key, else None."""
    return key.removeprefix(INPUT_PREFIX) if key.startswith(INPUT_PREFIX) else None


def input_stream_ensure(*, project: Project, run_id: str, name: str) -> Stream:
    """The run's input stream, created (JSON) when this is the first send. A finished run gets
    no new input: 409 ``run_finished``, as for any new stream of a finished run."""
    key = input_key(name)
    existing = stream_lookup(StreamRef(project_id=project.pk, run_id=run_id, key=key))
    if existing is not None:
        return existing
    stream, _ = stream_create(
        project=project, key=key, run_id=run_id, config=StreamConfig(content_type=JSON)
    )
    return stream
