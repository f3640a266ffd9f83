"""Runs, their streams and stream definitions as JSON-ready dicts: the API's (and the SDK's)
shape."""

from __future__ import annotations

from typing import Any

from apps.runs.models import Run
from apps.streams.models import Stream, StreamDefinition


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "task_id": run.task_id,
        "status": run.status,
        "payload": run.payload,
        "output": run.output,
        "error": run.error,
        "metadata": run.metadata,
        "tags": run.tags,
        "parent_id": run.parent_id or None,
        "root_id": run.root_id or None,
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "expires_at": _iso(run.expires_at),
        "waiting_for": run.waiting_for or None,
    }


def stream_dict(stream: Stream) -> dict[str, Any]:
    return {
        "key": stream.key,
        "content_type": stream.content_type,
        "chunks": stream.next_index - stream.first_index,
        "first_index": stream.first_index,
        "next_index": stream.next_index,
        "bytes": stream.byte_size,
        "closed": stream.closed,
        "created_at": _iso(stream.created_at),
        "closed_at": _iso(stream.closed_at),
        "forked_from": _fork_dict(stream),
    }


def _fork_dict(stream: Stream) -> dict[str, Any] | None:
    """Where a fork branched: its source (run and key) and the index its own chunks start at."""
    source = stream.forked_from
    if source is None:
        return None
    return {"run_id": source.run_id, "key": source.key, "at_index": stream.fork_index}


def definition_dict(definition: StreamDefinition) -> dict[str, Any]:
    return {
        "stream_id": definition.stream_id,
        "schema": definition.schema,
        "description": definition.description,
        "validate": definition.validate,
        "updated_at": _iso(definition.updated_at),
    }
