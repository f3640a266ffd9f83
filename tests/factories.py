"""Test data built through the same services the product uses."""

from __future__ import annotations

from apps.projects.models import Project
from apps.projects.services import project_create
from apps.runs.models import Run
from apps.runs.services import run_create
from apps.streams.models import Stream
from apps.streams.services import StreamConfig, chunks_append, stream_create

_counter = iter(range(1_000_000))


def make_project(name: str | None = None) -> tuple[Project, str]:
    return project_create(name=name or f"project-{next(_counter)}")


def make_run(project: Project, task_id: str = "demo-task") -> Run:
    return run_create(project=project, task_id=task_id, payload={"n": 1})


def make_stream(
    project: Project,
    key: str | None = None,
    *,
    content_type: str = "application/json",
    run: Run | None = None,
    chunks: list[bytes] | None = None,
) -> Stream:
    stream, _ = stream_create(
        project=project,
        key=key or f"s-{next(_counter)}",
        run_id=run.id if run is not None else None,
        config=StreamConfig(content_type=content_type),
    )
    if chunks:
        chunks_append(stream_id=stream.pk, chunks=chunks)
        stream.refresh_from_db()
    return stream
