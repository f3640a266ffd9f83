"""Run queries: keyset pages, newest first (run ids are ULIDs, so they sort by time)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Max, QuerySet

from apps.projects.models import Project
from apps.runs.ids import is_run_id
from apps.runs.models import Run
from apps.streams.models import Stream


def runs_page(
    *,
    project: Project | None,
    projects: QuerySet[Project] | None = None,
    before: str | None = None,
    status: str | None = None,
    task_id: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    limit: int = 50,
) -> tuple[list[Run], str | None]:
    """One page of runs and the cursor of the next (None on the last page): of ``project``,
    or of any of ``projects`` (a subquery), or of every project when both are None."""
    query: QuerySet[Run] = Run.objects.all()
    if project is not None:
        query = query.filter(project=project)
    if projects is not None:
        query = query.filter(project__in=projects)
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
    return list(
        Stream.objects.filter(run=run).select_related("forked_from").order_by("created_at", "key")
    )


def run_with_streams(*, run_id: str) -> tuple[Run, list[Stream]] | None:
    run = Run.objects.filter(pk=run_id).first()
    return (run, run_streams(run=run)) if run is not None else None


RunStamp = tuple[dt.datetime, int, int | None]


def run_stamp(run: Run, streams: list[Stream]) -> RunStamp:
    """What ``run_stamps`` says of a run already loaded with its streams."""
    return run.updated_at, len(streams), max((s.pk for s in streams), default=None)


def run_stamps(run_ids: Sequence[str]) -> dict[str, RunStamp]:
    """A cheap fingerprint of many runs, in one query: when each row last changed (every run
    service moves ``updated_at``) and its streams' count and newest id (a new stream moves
    them). The hub's re-check compares it with the run it holds (``apps.streams.run_watch``)."""
    rows = (
        Run.objects.filter(pk__in=list(run_ids))
        .annotate(n=Count("streams"), newest=Max("streams__id"))
        .values_list("pk", "updated_at", "n", "newest")
    )
    return {pk: (updated_at, n, newest) for pk, updated_at, n, newest in rows}


def run_exists(*, project: Project, run_id: str) -> bool:
    return is_run_id(run_id) and Run.objects.filter(project=project, pk=run_id).exists()


def run_statuses(*, project: Project, run_ids: Sequence[str]) -> dict[str, str]:
    """The status of each of these runs of the project (runs that do not exist are left out):
    what a worker asks on its heartbeat, to stop the runs that were canceled."""
    ids = [run_id for run_id in run_ids if is_run_id(run_id)]
    rows = Run.objects.filter(project=project, pk__in=ids).values_list("pk", "status")
    return dict(rows)


_FAMILY_MAX = 100


@dataclass(frozen=True)
class RunFamily:
    """The runs related to one run: its parent and root while they are stored (retention may
    have removed them; the run still names them), and its first children, oldest first."""

    parent: Run | None
    root: Run | None
    children: list[Run]


def run_family(*, run: Run) -> RunFamily:
    above = {r.pk: r for r in Run.objects.filter(pk__in=[run.parent_id, run.root_id])}
    children = list(Run.objects.filter(parent_id=run.pk).order_by("id")[:_FAMILY_MAX])
    return RunFamily(above.get(run.parent_id), above.get(run.root_id), children)
