"""The System page's record of each server process: a heartbeat row it rewrites every
``STREAMDASH_SYSTEM_BEAT_SECONDS`` (``apps.dashboard.heartbeat``). A row not rewritten for three
beats belongs to a process that is gone; the page ignores it and the next beat deletes it."""

from __future__ import annotations

from django.db import models


class ServerProcess(models.Model):
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    # What ``heartbeat.figures`` returns: live readers, lag, errors, per-minute samples…
    figures = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "pid"], name="dashboard_process_host_pid")
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"
