"""Dashboard pages. Every view: log-in check, one selector call, render.

Selectors see only the projects the logged-in user may see (``apps.projects.selectors``), so
another project's run, stream or chunk is a 404 here, as if it did not exist.

htmx requests for a page's table get only the table partial (``#name``); every ``hx-get`` is
mirrored in an ``href`` so the pages work without JavaScript.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from apps.dashboard import charts, chunks, feeds, selectors
from apps.runs.selectors import run_family
from apps.streams import threads
from apps.streams.export import chunks_export
from apps.streams.models import Stream
from streamdash.core.content import content_kind, is_json_type
from streamdash.core.runstatus import RunStatus

HISTORY_PAGE = 50
LIVE_BACKLOG = 200
REPLAY_SPEEDS = ("instant", "1", "10", "100")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _int(value: str | None, default: int, *, low: int = 0) -> int:
    try:
        return max(low, int(value)) if value not in (None, "") else default
    except ValueError:
        return default


def _stream_or_404(request: HttpRequest, stream_id: int) -> Stream:
    stream = selectors.stream_get(stream_id, viewer=request.user)
    if stream is None:
        raise Http404("No such stream.")
    return stream


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    viewer = request.user
    rows, _ = selectors.runs_with_stats(viewer=viewer, filters=selectors.RunFilters(), limit=10)
    totals = selectors.site_totals(viewer=viewer, max_age=0)
    context = {"totals": totals, "rows": rows, "nav": "home"}
    return render(request, "dashboard/home.html", context)


@login_required
@require_GET
def runs(request: HtmxHttpRequest) -> HttpResponse:
    filters = selectors.RunFilters.from_query(request.GET)
    before = request.GET.get("before") or None
    rows, cursor = selectors.runs_with_stats(viewer=request.user, filters=filters, before=before)
    context = {
        "rows": rows,
        "cursor": cursor,
        "filters": filters,
        "filter_query": filters.as_query(),
        "statuses": RunStatus.values,
        "first_page": before is None,
        "nav": "runs",
    }
    template = "dashboard/runs.html"
    if getattr(request, "htmx", False) and request.htmx.target == "runs-table":
        template += "#runs-table"
    return render(request, template, context)


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    found = selectors.run_detail(run_id, viewer=request.user)
    if found is None:
        raise Http404("No such run.")
    run, streams = found
    context = {
        "run": run,
        "stream_views": [feeds.StreamStat.of(s).view(0.0) for s in streams],
        "family": run_family(run=run),
        "nav": "runs",
    }
    return render(request, "dashboard/run.html", context)


@login_required
@require_GET
def run_stream(request: HttpRequest, run_id: str, key: str) -> HttpResponse:
    """A stable, readable address for a run's stream: ``/runs/<run>/streams/<key>/``."""
    stream = selectors.run_stream_get(run_id, key, viewer=request.user)
    if stream is None:
        raise Http404("No such stream.")
    view = "dashboard:stream-history" if request.GET.get("view") == "history" else None
    query = request.GET.copy()
    query.pop("view", None)
    url = reverse(view or "dashboard:stream-live", args=[stream.pk])
    return redirect(f"{url}?{query.urlencode()}" if query else url)


@login_required
@require_GET
def streams(request: HttpRequest) -> HttpResponse:
    before = request.GET.get("before")
    rows = selectors.streams_recent(viewer=request.user, before=_int(before, 0) or None, limit=50)
    cursor = rows[-1].pk if len(rows) == 50 else None
    return render(
        request, "dashboard/streams.html", {"streams": rows, "cursor": cursor, "nav": "streams"}
    )


@login_required
@require_GET
def definitions(request: HttpRequest) -> HttpResponse:
    """Stream definitions by project: name, chunk type, schema, server-side validation."""
    context = {
        "projects": selectors.definitions_by_project(viewer=request.user),
        "nav": "definitions",
    }
    return render(request, "dashboard/definitions.html", context)


@login_required
@require_GET
def stream_live(request: HttpRequest, stream_id: int) -> HttpResponse:
    stream = _stream_or_404(request, stream_id)
    speed = request.GET.get("speed", "")
    replay = speed in REPLAY_SPEEDS
    default_start = (
        stream.first_index if replay else max(stream.first_index, stream.next_index - LIVE_BACKLOG)
    )
    start = _int(request.GET.get("from"), default_start)
    # The page appends the index to resume from (the one after the last chunk it shows).
    socket_path = f"/ws/streams/{stream.pk}/?" + (f"speed={speed}&" if replay else "") + "from="
    context = {
        "stream": stream,
        "start": start,
        "speed": speed if replay else "",
        "speeds": REPLAY_SPEEDS,
        "ws_path": socket_path,
        "kind": content_kind(stream.content_type),
        "definition": selectors.definition_for(stream),
        "nav": "streams",
    }
    return render(request, "dashboard/stream_live.html", context)


@login_required
@require_GET
def stream_history(request: HttpRequest, stream_id: int) -> HttpResponse:
    stream = _stream_or_404(request, stream_id)
    kind = content_kind(stream.content_type)
    first = stream.first_index
    last_start = max(first, stream.next_index - HISTORY_PAGE)
    # "Jump to index N" (the page that starts at N) wins over paging by start.
    wanted = request.GET.get("index", request.GET.get("start"))
    start = min(max(_int(wanted, first), first), last_start)
    needle = request.GET.get("q", "").strip()[:200]
    search = None
    if needle:
        search = selectors.chunks_search(stream, needle, start)
        records = search.matches
    else:
        records = selectors.chunks_page(stream, start, HISTORY_PAGE)
    rows = [(r, chunks.preview(r.data, kind)) for r in records]
    context = {
        "stream": stream,
        "rows": rows,
        "start": start,
        "needle": needle,
        "search": search,
        "first": first,
        "last_start": last_start,
        "prev_start": max(first, start - HISTORY_PAGE),
        "next_start": start + HISTORY_PAGE if start + HISTORY_PAGE < stream.next_index else None,
        "page_end": min(start + HISTORY_PAGE, stream.next_index) - 1,
        "definition": selectors.definition_for(stream),
        "nav": "streams",
    }
    return render(request, "dashboard/stream_history.html", context)


@login_required
@require_GET
def stream_chart(request: HttpRequest, stream_id: int) -> HttpResponse:
    stream = _stream_or_404(request, stream_id)
    chart = charts.build(selectors.chunk_rate(stream))
    return render(
        request, "dashboard/stream_history.html#chart", {"stream": stream, "chart": chart}
    )


@login_required
@require_GET
def chunk_detail(request: HttpRequest, stream_id: int, index: int) -> HttpResponse:
    stream = _stream_or_404(request, stream_id)
    record = selectors.chunk_get(stream, index)
    if record is None:
        raise Http404("No such chunk.")
    kind = content_kind(stream.content_type)
    full = request.GET.get("full") == "1"
    context = {
        "stream": stream,
        "record": record,
        "size": len(record.data),
        "body": chunks.body(record.data, kind, full=full),
        "prev": index - 1 if index > stream.first_index else None,
        "next": index + 1 if index + 1 < stream.next_index else None,
        "nav": "streams",
    }
    return render(request, "dashboard/chunk.html", context)


def _download(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    # Untrusted bytes: never rendered by the browser, never sniffed.
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def chunk_raw(request: HttpRequest, stream_id: int, index: int) -> HttpResponseBase:
    record = selectors.chunk_get(_stream_or_404(request, stream_id), index)
    if record is None:
        raise Http404("No such chunk.")
    response = HttpResponse(record.data, content_type="application/octet-stream")
    return _download(response, f"stream-{stream_id}-chunk-{index}.bin")


@login_required
@require_GET
async def stream_export(request: HttpRequest, stream_id: int, fmt: str) -> HttpResponseBase:
    """The whole stream as NDJSON (one ``{"index", "ts", "data"}`` per line) or raw bytes (a
    JSON array for JSON streams), streamed page by page up to the tail at request time."""
    stream = await threads.run_in(
        "read", selectors.stream_get, stream_id, viewer=await request.auser()
    )
    if stream is None or fmt not in ("ndjson", "raw"):
        raise Http404("No such stream.")
    as_array = fmt == "raw" and is_json_type(stream.content_type)
    body = chunks_export(
        stream_id=stream.pk,
        content_type=stream.content_type,
        start=stream.first_index,
        end=stream.next_index,
        fmt=fmt,  # type: ignore[arg-type]  # checked above
        fork_index=stream.fork_index,
    )
    content_type = "application/x-ndjson" if fmt == "ndjson" else "application/octet-stream"
    name = f"stream-{stream.pk}.{'ndjson' if fmt == 'ndjson' else ('json' if as_array else 'bin')}"
    return _download(StreamingHttpResponse(body, content_type=content_type), name)
