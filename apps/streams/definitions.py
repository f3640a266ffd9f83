"""Stream definitions: a stream id declared by code, with the JSON Schema of its chunk type.

The SDK registers one when a task author calls ``streams.define(...)`` and first uses it; the
dashboard shows it. Registering again replaces the schema and description (the code is the
source of truth), idempotently.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.projects.models import Project
from apps.streams.models import StreamDefinition
from apps.streams.schemas import check_schema
from streamdash.core.errors import BadRequest, NotFound, TooLarge
from streamdash.core.storable import check_json, check_text

__all__ = ["definition_get", "definition_put"]

_ID_RE = re.compile(r"[A-Za-z0-9._~:-]{1,200}")
_DESCRIPTION_MAX = 10_000


def _check_id(stream_id: str) -> None:
    if not _ID_RE.fullmatch(stream_id):
        raise BadRequest(
            f"Stream id {stream_id!r} is not valid: use 1–200 letters, digits and . _ ~ : -",
            stream=stream_id,
        )


def _check(stream_id: str, schema: Any, description: str) -> None:
    _check_id(stream_id)
    check_text(description, name="description", field="description")
    check_json(schema, name="schema", field="schema")
    if schema is not None and not isinstance(schema, dict | bool):
        raise BadRequest("schema must be a JSON Schema (an object or a boolean).", field="schema")
    if len(description) > _DESCRIPTION_MAX:
        raise BadRequest(
            f"description is longer than {_DESCRIPTION_MAX} characters.", field="description"
        )
    if schema is not None:
        check_schema(schema)
    size = len(json.dumps(schema))
    if size > settings.STREAMDASH_MAX_CHUNK_BYTES:
        raise TooLarge(
            f"The schema is {size} bytes; the limit is {settings.STREAMDASH_MAX_CHUNK_BYTES}.",
            limit=settings.STREAMDASH_MAX_CHUNK_BYTES,
        )


def definition_put(
    *, project: Project, stream_id: str, schema: Any = None, description: str = ""
) -> tuple[StreamDefinition, bool]:
    """Create or replace a stream definition. Returns (definition, created)."""
    _check(stream_id, schema, description)
    try:
        with transaction.atomic():
            definition, created = StreamDefinition.objects.select_for_update().get_or_create(
                project=project,
                stream_id=stream_id,
                defaults={"schema": schema, "description": description},
            )
            if not created and (definition.schema, definition.description) != (
                schema,
                description,
            ):
                definition.schema, definition.description = schema, description
                definition.save(update_fields=["schema", "description", "updated_at"])
    except IntegrityError:
        # Two registrations raced (several workers starting at once); the loser replays.
        return definition_put(
            project=project, stream_id=stream_id, schema=schema, description=description
        )
    return definition, created


def definition_get(*, project: Project, stream_id: str) -> StreamDefinition:
    _check_id(stream_id)
    definition = StreamDefinition.objects.filter(project=project, stream_id=stream_id).first()
    if definition is None:
        raise NotFound(f"Stream definition {stream_id!r} not found.", stream=stream_id)
    return definition
