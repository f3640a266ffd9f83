"""Run routes (PROTOCOL.md §3): create, list, read, update, list streams, mint tokens."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.api.errors import api_errors
from apps.api.jsonbody import read_json_object
from apps.api.serializers import run_dict, stream_dict
from apps.projects.access import authenticate
from apps.projects.tokens import MAX_TTL, token_mint, validate_scopes
from apps.runs import selectors, services
from apps.runs.ids import is_run_id
from streamdash.core.errors import BadRequest
from streamdash.core.storable import check_text

_LIST_LIMIT_MAX = 200
_LIST_FILTERS = ("status", "task_id", "tag", "q")


def _optional_list(body: dict[str, object], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name} must be a list of strings.", field=name)
    return list(value)


def _list_query(query: QueryDict) -> dict[str, str | None]:
    """The list's cursor (a run id: the ``next_cursor`` of the page before) and filters."""
    cursor = query.get("cursor") or None
    if cursor is not None and not is_run_id(cursor):
        raise BadRequest(
            f"cursor {cursor!r} is not valid: pass the next_cursor of the previous page.",
            field="cursor",
        )
    filters = {name: query.get(name) for name in _LIST_FILTERS}
    for name, value in filters.items():
        if value:
            check_text(value, name=name, field=name)
    return {"before": cursor, **filters}


def _optional_dict(body: dict[str, object], name: str) -> dict[str, object] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object.", field=name)
    return value


@csrf_exempt
@api_errors
@require_http_methods(["GET", "POST"])
def runs(request: HttpRequest) -> JsonResponse:
    principal = authenticate(request)
    if request.method == "GET":
        principal.require("read")
        try:
            limit = min(int(request.GET.get("limit", "50")), _LIST_LIMIT_MAX)
        except ValueError:
            raise BadRequest("limit must be a whole number.") from None
        query = _list_query(request.GET)
        page, next_cursor = selectors.runs_page(
            project=principal.project,
            before=query["before"],
            status=query["status"],
            task_id=query["task_id"],
            tag=query["tag"],
            search=query["q"],
            limit=max(limit, 1),
        )
        return JsonResponse({"data": [run_dict(r) for r in page], "next_cursor": next_cursor})
    principal.require("write")
    body = read_json_object(request)
    task_id = body.get("task_id")
    if not isinstance(task_id, str):
        raise BadRequest("task_id is required and must be a string.", field="task_id")
    parent_id = body.get("parent_id")
    if parent_id is not None and not isinstance(parent_id, str):
        raise BadRequest("parent_id must be a run id.", field="parent_id")
    run = services.run_create(
        project=principal.project,
        task_id=task_id,
        payload=body.get("payload"),
        metadata=_optional_dict(body, "metadata"),
        tags=_optional_list(body, "tags"),
        parent_id=parent_id,
    )
    result = run_dict(run)
    if body.get("read_token"):
        result["read_token"] = token_mint(
            project_id=principal.project.pk, scopes=[f"read:runs:{run.id}"]
        )
    return JsonResponse(result, status=201)


@csrf_exempt
@api_errors
@require_http_methods(["GET", "PATCH"])
def run_detail(request: HttpRequest, run_id: str) -> JsonResponse:
    principal = authenticate(request)
    if request.method == "GET":
        principal.require("read", run_id=run_id)
        return JsonResponse(run_dict(services.run_get(project=principal.project, run_id=run_id)))
    principal.require("write", run_id=run_id)
    body = read_json_object(request)
    status = body.get("status")
    if status is not None and not isinstance(status, str):
        raise BadRequest("status must be a string.", field="status")
    waiting_for = body.get("waiting_for")
    if not isinstance(waiting_for, str | None):
        raise BadRequest("waiting_for must be an input's name, or null.", field="waiting_for")
    run = services.run_update(
        project=principal.project,
        run_id=run_id,
        status=status,
        metadata=_optional_dict(body, "metadata"),
        output=body.get("output"),
        error=body.get("error"),
        set_output="output" in body,
        set_error="error" in body,
        waiting_for=(waiting_for or "") if "waiting_for" in body else None,
    )
    return JsonResponse(run_dict(run))


@api_errors
@require_GET
def run_streams(request: HttpRequest, run_id: str) -> JsonResponse:
    principal = authenticate(request)
    principal.require("read", run_id=run_id)
    run = services.run_get(project=principal.project, run_id=run_id)
    return JsonResponse({"data": [stream_dict(s) for s in selectors.run_streams(run=run)]})


@csrf_exempt
@api_errors
@require_POST
def tokens(request: HttpRequest) -> JsonResponse:
    principal = authenticate(request)
    if principal.is_token:
        raise BadRequest("Tokens are minted with an API key, not with another token.")
    body = read_json_object(request)
    scopes = validate_scopes(body.get("scopes"))
    for scope in scopes:
        action, _, rest = scope.partition(":")
        principal.require(action)
        run_id = rest.partition(":")[2].partition("/")[0]
        services.run_get(project=principal.project, run_id=run_id)
    ttl_value = body.get("ttl", 900)
    ttl_max = int(MAX_TTL.total_seconds())
    # Bounded before timedelta(), which overflows (a 500) on a 30-digit number.
    if (
        not isinstance(ttl_value, int)
        or isinstance(ttl_value, bool)
        or not 1 <= ttl_value <= ttl_max
    ):
        raise BadRequest(f"ttl must be whole seconds, from 1 to {ttl_max}.", field="ttl")
    ttl = dt.timedelta(seconds=ttl_value)
    token = token_mint(project_id=principal.project.pk, scopes=scopes, ttl=ttl)
    return JsonResponse({"token": token, "scopes": scopes, "expires_in": ttl_value}, status=201)
