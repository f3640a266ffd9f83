from __future__ import annotations

from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "apps.streams"
    default_auto_field = "django.db.models.BigAutoField"
