"""Stream definitions in the admin: what the code declared (name, chunk type, JSON Schema, shown
read-only: the code is their source of truth) and the one switch an operator owns, whether the
server validates appends against the schema (``apps.streams.schemas``)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from apps.streams.models import StreamDefinition
from apps.streams.schemas import chunk_type, schema_pretty


@admin.register(StreamDefinition)
class StreamDefinitionAdmin(admin.ModelAdmin):
    list_display = ("stream_id", "project", "chunk_type", "validate", "updated_at")
    list_editable = ("validate",)
    list_filter = ("project", "validate")
    search_fields = ("stream_id", "description", "project__name")
    fields = ("project", "stream_id", "chunk_type", "description", "schema_json", "validate")
    readonly_fields = ("project", "stream_id", "chunk_type", "description", "schema_json")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # definitions are registered by code (the SDK's streams.define)

    @admin.display(description="Chunk type")
    def chunk_type(self, definition: StreamDefinition) -> str:
        return chunk_type(definition.schema)

    @admin.display(description="JSON Schema")
    def schema_json(self, definition: StreamDefinition) -> str:
        if definition.schema is None:
            return "(none: chunks of any shape)"
        return format_html('<pre class="schema">{}</pre>', schema_pretty(definition.schema))
