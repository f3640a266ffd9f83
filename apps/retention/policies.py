"""Changing retention: a run's ``expires_at`` is the source of truth the purge reads; it is set
when the run ends (``apps.runs.expiry``) and re-computed here when a policy changes."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, Q
from django.utils import timezone

from apps.projects.models import Project
from apps.runs.expiry import retention_days_for
from apps.runs.models import Run
from streamdash.core.runstatus import FINAL_STATUSES, RunStatus

__all__ = ["policy_apply", "retention_expire_now", "retention_extend"]

_BATCH = 500


def _kept_runs(projects: list[Project]) -> list[str]:
    """Finished runs of these projects that the purge has not expired yet."""
    final = [s for s in FINAL_STATUSES if s != RunStatus.EXPIRED]
    return list(
        Run.objects.filter(project__in=projects, status__in=final).values_list("pk", flat=True)
    )


def _in_batches(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + _BATCH] for i in range(0, len(ids), _BATCH)]


def policy_apply(*, project: Project, task_id: str | None = None) -> int:
    """Re-compute ``expires_at`` of finished runs after a policy change. Returns how many."""
    runs = Run.objects.filter(project=project, finished_at__isnull=False).exclude(
        status=RunStatus.EXPIRED
    )
    if task_id is not None:
        runs = runs.filter(task_id=task_id)
    changed = 0
    for task in runs.values_list("task_id", flat=True).distinct():
        days = dt.timedelta(days=retention_days_for(project=project, task_id=task))
        ids = list(runs.filter(task_id=task).values_list("pk", flat=True))
        for batch in _in_batches(ids):
            changed += Run.objects.filter(pk__in=batch).update(expires_at=F("finished_at") + days)
    return changed


def retention_extend(*, projects: list[Project], days: int) -> int:
    """Keep the projects' finished runs ``days`` longer (counted from now if already due)."""
    now = timezone.now()
    extra = dt.timedelta(days=days)
    changed = 0
    for batch in _in_batches(_kept_runs(projects)):
        runs = Run.objects.filter(pk__in=batch)
        changed += runs.filter(expires_at__gte=now).update(expires_at=F("expires_at") + extra)
        changed += runs.filter(Q(expires_at__lt=now) | Q(expires_at__isnull=True)).update(
            expires_at=now + extra
        )
    return changed


def retention_expire_now(*, projects: list[Project]) -> int:
    """Make the projects' finished runs due for purge now. Returns how many."""
    now = timezone.now()
    return sum(
        Run.objects.filter(pk__in=batch).update(expires_at=now)
        for batch in _in_batches(_kept_runs(projects))
    )
