"""The worker's routes. ``POST /api/v1/runs/claim``: a worker takes the oldest queued run of
its tasks (200 with the run, now executing) or learns there is none (204). Safe with many
workers: see ``run_claim``. ``GET /api/v1/runs/statuses?ids=a,b``: the statuses of the runs a
worker executes, asked on its heartbeat so that it stops the canceled ones."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.api.errors import api_errors
from apps.api.jsonbody import read_json_object
from apps.api.serializers import run_dict
from apps.projects.access import authenticate
from apps.runs.selectors import run_statuses
from apps.runs.services import run_claim
from streamdash.core.errors import BadRequest

_TASKS_MAX = 500


@csrf_exempt
@api_errors
@require_POST
def claim(request: HttpRequest) -> HttpResponse:
    principal = authenticate(request)
    principal.require("write")
    body = read_json_object(request)
    task_ids = body.get("task_ids")
    if (
        not isinstance(task_ids, list)
        or not task_ids
        or len(task_ids) > _TASKS_MAX
        or not all(isinstance(t, str) and t for t in task_ids)
    ):
        raise BadRequest(f"task_ids must be a list of 1–{_TASKS_MAX} task ids.", field="task_ids")
    worker = body.get("worker", "")
    if not isinstance(worker, str) or len(worker) > 100:
        raise BadRequest("worker must be a string of at most 100 characters.", field="worker")
    run = run_claim(project=principal.project, task_ids=task_ids, worker=worker)
    if run is None:
        return HttpResponse(status=204)
    return JsonResponse(run_dict(run))


@api_errors
@require_GET
def statuses(request: HttpRequest) -> JsonResponse:
    principal = authenticate(request)
    if not principal.allows("write"):  # a worker's key writes (claims); a reader's may read
        principal.require("read")
    ids = [run_id for run_id in request.GET.get("ids", "").split(",") if run_id]
    if len(ids) > _TASKS_MAX:
        raise BadRequest(f"ids may name at most {_TASKS_MAX} runs.", field="ids")
    return JsonResponse({"statuses": run_statuses(project=principal.project, run_ids=ids)})
