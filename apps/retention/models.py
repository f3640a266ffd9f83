from __future__ import annotations

from django.db import models


class TaskRetentionPolicy(models.Model):
    """Days a finished run of one task is kept, overriding its project's policy."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="task_retention_policies"
    )
    task_id = models.CharField(max_length=200)
    retention_days = models.PositiveIntegerField(help_text="Days kept after a run of it ends.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "task retention policies"
        constraints = [
            models.UniqueConstraint(fields=["project", "task_id"], name="task_retention_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project.name}/{self.task_id}: {self.retention_days} days"


class PurgeMark(models.Model):
    """When the scheduled purge last started, one row for the deployment: the server processes
    claim an interval by moving it forward (``apps.retention.services.purge_claim``)."""

    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"last scheduled purge: {self.started_at:%Y-%m-%d %H:%M:%S}"
