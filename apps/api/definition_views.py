"""``/api/v1/definitions/<stream_id>``: register (PUT) or read (GET) a stream definition."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.api.errors import api_errors
from apps.api.jsonbody import read_json_object
from apps.api.serializers import definition_dict
from apps.projects.access import authenticate
from apps.streams.definitions import definition_get, definition_put
from streamdash.core.errors import BadRequest


@csrf_exempt
@api_errors
@require_http_methods(["GET", "PUT"])
def definition(request: HttpRequest, stream_id: str) -> JsonResponse:
    principal = authenticate(request)
    if request.method == "GET":
        principal.require("read")
        found = definition_get(project=principal.project, stream_id=stream_id)
        return JsonResponse(definition_dict(found))
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
    return JsonResponse(definition_dict(saved), status=201 if created else 200)
