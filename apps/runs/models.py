from __future__ import annotations

from django.db import models

from streamdash.core.runstatus import FINAL_STATUSES, RunStatus


class Run(models.Model):
    id = models.CharField(primary_key=True, max_length=40, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="runs")
    task_id = models.CharField(max_length=200, db_index=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    payload = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    waiting_for = models.CharField(
        max_length=200, blank=True, default="", help_text="The input the task is waiting for."
    )
    # The run that triggered this one, and the top of that tree ("" for a run triggered from
    # outside any run). Ids rather than foreign keys: they still say where a run came from
    # after retention has removed its parent.
    parent_id = models.CharField(max_length=40, blank=True, default="", db_index=True)
    root_id = models.CharField(max_length=40, blank=True, default="", db_index=True)

    class Meta:
        indexes = [
            # Keyset pagination of the runs list, newest first (id is a ULID, so it sorts by time).
            models.Index(fields=["project", "-id"], name="run_project_id_desc"),
            models.Index(fields=["status", "-id"], name="run_status_id_desc"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
