"""Run queries: keyset pages, newest first (run ids are ULIDs, so they sort by time)."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from apps.projects.models import Project
from apps.runs.ids import is_run_id
from apps.runs.models import Run
from apps.streams.models import Stream


def runs_page(
    *,
    project: Project | None,
    before: str | None = None,
    status: str | None = None,
    task_id: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    limit: int = 50,
) -> tuple[list[Run], str | None]:
    """One page of runs and the cursor of the next (None on the last page)."""
    query: QuerySet[Run] = Run.objects.all()
    if project is not None:
        query = query.filter(project=project)
    if before:
        query = query.filter(id__lt=before)
    if status:
        query = query.filter(status=status)
    if task_id:
        query = query.filter(task_id=task_id)
    if tag:
        # JSON containment exists on PostgreSQL only; SQLite matches the quoted tag in the text.
        if connection.vendor == "postgresql":
            query = query.filter(tags__contains=[tag])
        else:
            query = query.filter(tags__icontains=f'"{tag}"')
    if search:
        query = query.filter(id__icontains=search)
    rows = list(query.order_by("-id")[: limit + 1])
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def run_streams(*, run: Run) -> list[Stream]:
    return list(Stream.objects.filter(run=run).order_by("created_at", "key"))


def run_exists(*, project: Project, run_id: str) -> bool:
    return is_run_id(run_id) and Run.objects.filter(project=project, pk=run_id).exists()
