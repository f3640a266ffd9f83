"""``/api/v1/definitions/<stream_id>``: register (PUT) or read (GET) a stream definition."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.api.errors import api_errors
from apps.api.jsonbody import read_json_object
from apps.projects.access import authenticate
from apps.streams.definitions import definition_get, definition_put
from apps.streams.models import StreamDefinition
from streamdash.core.errors import BadRequest


def _definition_dict(definition: StreamDefinition) -> dict[str, Any]:
    return {
        "stream_id": definition.stream_id,
        "schema": definition.schema,
        "description": definition.description,
        "validate": definition.validate,
        "updated_at": definition.updated_at.isoformat().replace("+00:00", "Z"),
    }


@csrf_exempt
@require_http_methods(["GET", "PUT"])
@api_errors
def definition(request: HttpRequest, stream_id: str) -> JsonResponse:
    principal = authenticate(request)
    if request.method == "GET":
        principal.require("read")
        found = definition_get(project=principal.project, stream_id=stream_id)
        return JsonResponse(_definition_dict(found))
    principal.require("write")
    body = read_json_object(request)
    description = body.get("description", "")
    if not isinstance(description, str):
        raise BadRequest("description must be a string.", field="description")
    saved, created = definition_put(
        project=principal.project,
        stream_id=stream_id,
        schema=body.get("schema"),
        description=description,
    )
    return JsonResponse(_definition_dict(saved), status=201 if created else 200)
