from __future__ import annotations

from django.conf import settings
from django.db import models


class Project(models.Model):
    """A tenant: owns API keys, runs, standalone streams and a retention policy."""

    name = models.CharField(max_length=100, unique=True)
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days kept after a run ends; empty = the site default."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Who sees the project's runs and streams in the dashboard (staff see every project).
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="projects",
        help_text="Dashboard users who see this project's runs and streams; staff see all.",
    )

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A project's secret key. Only a SHA-256 digest is stored; the secret is shown once."""

    SCOPES = ("read", "write", "admin")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.project.name})"
