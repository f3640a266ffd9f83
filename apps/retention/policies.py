"""Changing retention: a run's ``expires_at`` is the source of truth the purge reads; it is set
when the run ends (``apps.runs.expiry``) and re-computed here when a policy changes. The runs
change through ``apps.runs.services.runs_set_expiry``, which writes in batches and tells each
run's subscribers after each commit."""

from __future__ import annotations

import datetime as dt

from django.db.models import Case, DateTimeField, F, QuerySet, Value, When
from django.utils import timezone

from apps.projects.models import Project
from apps.runs.expiry import retention_days_for
from apps.runs.models import Run
from apps.runs.services import runs_set_expiry
from streamdash.core.runstatus import RunStatus

__all__ = ["policy_apply", "retention_expire_now", "retention_extend"]


def _kept_runs(projects: list[Project], task_id: str | None = None) -> QuerySet[Run]:
    """Finished runs of these projects (of one task, if named) that the purge has not expired
    yet: the runs whose expiry retention may still change."""
    runs = Run.objects.filter(project__in=projects, finished_at__isnull=False).exclude(
        status=RunStatus.EXPIRED
    )
    return runs.filter(task_id=task_id) if task_id is not None else runs


def policy_apply(*, project: Project, task_id: str | None = None) -> int:
    """Re-compute ``expires_at`` of finished runs after a policy change. Returns how many."""
    runs = _kept_runs([project], task_id)
    changed = 0
    for task in runs.values_list("task_id", flat=True).distinct():
        days = dt.timedelta(days=retention_days_for(project=project, task_id=task))
        changed += runs_set_expiry(
            run_ids=runs.filter(task_id=task).values_list("pk", flat=True),
            expires_at=F("finished_at") + days,
        )
    return changed


def retention_extend(*, projects: list[Project], days: int) -> int:
    """Keep the projects' finished runs ``days`` longer (counted from now if already due)."""
    now = timezone.now()
    extra = dt.timedelta(days=days)
    later = Case(
        When(expires_at__gte=now, then=F("expires_at") + extra),
        default=Value(now + extra),  # already due, or never set
        output_field=DateTimeField(),
    )
    return runs_set_expiry(
        run_ids=_kept_runs(projects).values_list("pk", flat=True), expires_at=later
    )


def retention_expire_now(*, projects: list[Project]) -> int:
    """Make the projects' finished runs due for purge now. Returns how many."""
    return runs_set_expiry(
        run_ids=_kept_runs(projects).values_list("pk", flat=True), expires_at=timezone.now()
    )
