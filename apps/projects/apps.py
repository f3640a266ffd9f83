from __future__ import annotations

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.projects import checks  # noqa: F401  (registers the deploy checks)
