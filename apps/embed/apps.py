from __future__ import annotations

from django.apps import AppConfig


class EmbedConfig(AppConfig):
    """Streams in application pages: the ``{% streamdash_stream %}`` tag and /examples/."""

    name = "apps.embed"
    default_auto_field = "django.db.models.BigAutoField"
