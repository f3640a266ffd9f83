"""``/api/v1/runs/<run>/inputs/<name>``: a run's input stream, as a Durable Streams URL.

Every operation is the stream URL's (``live_views.dispatch``) on the stream ``input:<name>``,
with two differences: a send (POST) creates the stream when it is the first, so a sender never
has to, and a ``write:inputs:<run>`` token may send (``targets.InputTarget``). A send is
idempotent with the producer headers, like any append; once the run has finished it is a 409
``run_finished`` (a resent duplicate still answers as the first did).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from apps.api.errors import error_response
from apps.api.exchange import StreamRequest, StreamResponse, from_django, to_django
from apps.api.live_views import dispatch, error_stream_response
from apps.api.targets import InputTarget, input_target
from apps.streams import threads
from apps.streams.inputs import JSON, input_stream_ensure
from streamdash.core.content import base_content_type
from streamdash.core.errors import BadRequest, DomainError, TooLarge


def _ensure(request: StreamRequest, run_id: str, name: str) -> None:
    target = input_target(request, run_id, name)
    target.require("write")
    content_type = request.headers.get("Content-Type") or ""
    if request.body and base_content_type(content_type) != JSON:
        raise BadRequest("An input takes JSON: send Content-Type: application/json.")
    input_stream_ensure(project=target.principal.project, run_id=run_id, name=name)


async def serve_input(request: StreamRequest, run_id: str, name: str) -> StreamResponse:
    """Serve one request on an input URL (the lean app's and the Django view's)."""

    def resolve(req: StreamRequest) -> InputTarget:
        return input_target(req, run_id, name)

    if request.method == "POST":
        try:
            pool = "write" if request.pooled else "caller"
            await threads.run_in(pool, _ensure, request, run_id, name)
        except DomainError as exc:
            return error_stream_response(exc)
    return await dispatch(request, resolve)


@csrf_exempt
async def run_input(request: HttpRequest, run_id: str, name: str) -> HttpResponseBase:
    try:
        body = request.body
    except RequestDataTooBig:
        limit = settings.STREAMDASH_MAX_REQUEST_BYTES
        return error_response(
            TooLarge(f"The request body is larger than {limit} bytes.", limit=limit)
        )
    return to_django(await serve_input(from_django(request, body), run_id, name))
