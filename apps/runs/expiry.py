"""How long a finished run is kept: its task's policy, else its project's, else the site's
default (``STREAMDASH_RETENTION_DAYS``, 28 days).

Finishing a run sets its ``expires_at`` from this, so it lives with the run lifecycle. The task
policies are a model of ``apps.retention`` (which sits above runs and owns the purge); they are
read here through the project's reverse relation, by name, without importing that app.
"""

from __future__ import annotations

from django.conf import settings

from apps.projects.models import Project


def retention_days_for(*, project: Project, task_id: str) -> int:
    task_days: int | None = (
        project.task_retention_policies.filter(task_id=task_id)
        .values_list("retention_days", flat=True)
        .first()
    )
    if task_days is not None:
        return task_days
    return project.retention_days or settings.STREAMDASH_RETENTION_DAYS
