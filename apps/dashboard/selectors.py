"""The dashboard's queries. Every list is a keyset read; nothing loads a whole stream.

Every read of a run or stream takes the ``viewer`` and sees only the projects
``projects_visible_to`` gives them: another project's run or stream is None here, exactly like
a missing one, so pages answer 404 and sockets close with 4404 without revealing that it
exists. Chunk reads take a ``Stream`` that one of these reads returned, never a bare id.

All functions are sync (the ORM); async consumers call them through ``apps.streams.threads.run_in``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Length

from apps.projects.models import Project
from apps.projects.selectors import Viewer, projects_visible_to, sees_all_projects
from apps.runs.models import Run
from apps.runs.selectors import runs_page
from apps.streams import selectors as stream_selectors
from apps.streams.models import Chunk, Stream, StreamDefinition
from apps.streams.records import ChunkRecord
from apps.streams.schemas import chunk_type, schema_pretty
from streamdash.core.runstatus import RunStatus

ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.EXECUTING)


@dataclass(frozen=True)
class RunStats:
    streams: int = 0
    chunks: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class RunFilters:
    status: str = ""
    task_id: str = ""
    tag: str = ""
    search: str = ""

    @classmethod
    def from_query(cls, query: Any) -> RunFilters:
        status = query.get("status", "")
        return cls(
            status=status if status in RunStatus.values else "",
            task_id=query.get("task", "").strip()[:200],
            tag=query.get("tag", "").strip()[:200],
            search=query.get("q", "").strip()[:100],
        )

    def matches(self, run: Run) -> bool:
        """The same test as ``runs_page``'s filters, for a run that changed live."""
        return (
            (not self.status or run.status == self.status)
            and (not self.task_id or run.task_id == self.task_id)
            and (not self.tag or self.tag in (run.tags or []))
            and (not self.search or self.search.lower() in run.id.lower())
        )

    def as_query(self) -> dict[str, str]:
        pairs = {"status": self.status, "task": self.task_id, "tag": self.tag, "q": self.search}
        return {k: v for k, v in pairs.items() if v}


def run_stats(run_ids: list[str]) -> dict[str, RunStats]:
    """Streams, chunks and bytes of each run, in one grouped query."""
    rows = (
        Stream.objects.filter(run_id__in=run_ids)
        .values("run_id")
        .annotate(
            n=Count("pk"),
            # Not "chunks": that name is Stream's reverse relation to its chunks.
            n_chunks=Sum(F("next_index") - F("first_index")),
            size=Sum("byte_size"),
        )
    )
    return {r["run_id"]: RunStats(r["n"], r["n_chunks"] or 0, r["size"] or 0) for r in rows}


def runs_with_stats(
    *, viewer: Viewer, filters: RunFilters, before: str | None = None, limit: int = 50
) -> tuple[list[tuple[Run, RunStats]], str | None]:
    runs, cursor = runs_page(
        project=None,
        projects=projects_visible_to(viewer),
        before=before,
        status=filters.status or None,
        task_id=filters.task_id or None,
        tag=filters.tag or None,
        search=filters.search or None,
        limit=limit,
    )
    stats = run_stats([r.id for r in runs])
    return [(r, stats.get(r.id, RunStats())) for r in runs], cursor


def runs_by_ids(run_ids: list[str], *, viewer: Viewer) -> list[tuple[Run, RunStats]]:
    """The runs among ``run_ids`` that the viewer sees (the runs socket hears of every run)."""
    runs = list(
        Run.objects.select_related("project")
        .filter(pk__in=run_ids, project__in=projects_visible_to(viewer))
        .order_by("-id")
    )
    stats = run_stats([r.id for r in runs])
    return [(r, stats.get(r.id, RunStats())) for r in runs]


def run_detail(run_id: str, *, viewer: Viewer) -> tuple[Run, list[Stream]] | None:
    run = (
        Run.objects.select_related("project")
        .filter(pk=run_id, project__in=projects_visible_to(viewer))
        .first()
    )
    if run is None:
        return None
    streams = list(Stream.objects.filter(run=run).order_by("created_at", "key"))
    return run, streams


def stream_get(stream_id: int, *, viewer: Viewer) -> Stream | None:
    return (
        Stream.objects.select_related("run", "project", "forked_from")
        .filter(pk=stream_id, project__in=projects_visible_to(viewer))
        .first()
    )


def run_stream_get(run_id: str, key: str, *, viewer: Viewer) -> Stream | None:
    return Stream.objects.filter(
        run_id=run_id, key=key, project__in=projects_visible_to(viewer)
    ).first()


@dataclass(frozen=True)
class DefinitionRow:
    definition: StreamDefinition
    chunk_type: str
    schema: str  # pretty-printed


def definitions_by_project(*, viewer: Viewer) -> list[tuple[Project, list[DefinitionRow]]]:
    """The stream definitions of every project the viewer sees, by project, by name."""
    found: dict[int, tuple[Project, list[DefinitionRow]]] = {}
    query = StreamDefinition.objects.select_related("project").filter(
        project__in=projects_visible_to(viewer)
    )
    for definition in query.order_by("project__name", "project_id", "stream_id"):
        row = DefinitionRow(
            definition, chunk_type(definition.schema), schema_pretty(definition.schema)
        )
        found.setdefault(definition.project_id, (definition.project, []))[1].append(row)
    return list(found.values())


def definition_for(stream: Stream) -> DefinitionRow | None:
    """The definition a stream's key names in its project (a run's stream ``ai`` uses ``ai``)."""
    definition = StreamDefinition.objects.filter(
        project_id=stream.project_id, stream_id=stream.key
    ).first()
    if definition is None:
        return None
    return DefinitionRow(definition, chunk_type(definition.schema), "")


def streams_recent(*, viewer: Viewer, before: int | None = None, limit: int = 50) -> list[Stream]:
    query = Stream.objects.select_related("project", "run").filter(
        project__in=projects_visible_to(viewer)
    )
    if before is not None:
        query = query.filter(pk__lt=before)
    return list(query.order_by("-pk")[:limit])


@dataclass(frozen=True)
class SiteTotals:
    active_runs: int
    runs: int
    streams: int
    chunks: int
    bytes: int
    sampled_at: float


_totals_lock = threading.Lock()
# One sample per set of visible projects: "*" for staff, who all see the same, else per user.
_totals_cache: dict[str, SiteTotals] = {}
_TOTALS_KEEP = 60.0  # seconds; older samples are dropped, so the cache holds active users only


def site_totals(*, viewer: Viewer, max_age: float = 1.5) -> SiteTotals:
    """Counters for the home page over the projects the viewer sees, shared for ``max_age``
    by every socket of this process that sees the same projects."""
    key = "*" if sees_all_projects(viewer) else f"user:{viewer.pk}"
    visible = projects_visible_to(viewer)
    with _totals_lock:
        now = time.monotonic()
        cached = _totals_cache.get(key)
        if cached is not None and now - cached.sampled_at < max_age:
            return cached
        for stale in [k for k, v in _totals_cache.items() if now - v.sampled_at > _TOTALS_KEEP]:
            del _totals_cache[stale]
        runs = Run.objects.filter(project__in=visible).aggregate(
            total=Count("pk"), active=Count("pk", filter=Q(status__in=ACTIVE_STATUSES))
        )
        streams = Stream.objects.filter(project__in=visible).aggregate(
            n=Count("pk"), chunks=Sum(F("next_index") - F("first_index")), size=Sum("byte_size")
        )
        totals = SiteTotals(
            active_runs=runs["active"],
            runs=runs["total"],
            streams=streams["n"],
            chunks=streams["chunks"] or 0,
            bytes=streams["size"] or 0,
            sampled_at=time.monotonic(),
        )
        _totals_cache[key] = totals
        return totals


# --- history ------------------------------------------------------------------------------
def chunks_page(stream: Stream, start: int, limit: int) -> list[ChunkRecord]:
    return stream_selectors.chunks_from_index(
        stream_id=stream.pk,
        start=start,
        end=stream.next_index,
        limit=limit,
        fork_index=stream.fork_index,
    )


def chunk_get(stream: Stream, index: int) -> ChunkRecord | None:
    rows = stream_selectors.chunks_from_index(
        stream_id=stream.pk,
        start=index,
        end=index + 1,
        limit=1,
        max_bytes=1,
        fork_index=stream.fork_index,
    )
    return rows[0] if rows else None


@dataclass(frozen=True)
class SearchResult:
    matches: list[ChunkRecord]
    scanned_from: int
    scanned_to: int  # next index to scan; equals the stream's next index when done


def chunks_search(
    stream: Stream, needle: str, start: int, *, scan_limit: int = 20_000, max_matches: int = 50
) -> SearchResult:
    """Chunks from ``start`` whose text contains ``needle`` (case-insensitive), scanning at
    most ``scan_limit`` chunks in keyset pages so one search never reads a whole big stream."""
    wanted = needle.lower()
    position = start
    matches: list[ChunkRecord] = []
    stop = min(stream.next_index, start + scan_limit)
    while position < stop and len(matches) < max_matches:
        page = stream_selectors.chunks_from_index(
            stream_id=stream.pk, start=position, end=stop, limit=1000, fork_index=stream.fork_index
        )
        if not page:
            break
        for record in page:
            position = record.index + 1
            if wanted in record.data.decode("utf-8", errors="replace").lower():
                matches.append(record)
                if len(matches) >= max_matches:
                    break
    return SearchResult(matches, start, position if position < stop else stop)


@dataclass(frozen=True)
class RateBucket:
    start: float  # seconds since the epoch
    end: float
    chunks: int
    bytes: int


def chunk_rate(stream: Stream, *, window: int = 200_000, parts: int = 400) -> list[RateBucket]:
    """Chunk counts and bytes of the last ``window`` chunks, grouped by index range in the
    database (one query), each group with its first and last timestamp."""
    end = stream.next_index
    begin = max(stream.first_index, end - window)
    if end <= begin:
        return []
    step = max(1, -(-(end - begin) // parts))
    rows = (
        Chunk.objects.filter(stream_id=stream.pk, index__gte=begin, index__lt=end)
        .annotate(bucket=(F("index") - begin) / step)
        .values("bucket")
        .annotate(
            first=Min("created_at"),
            last=Max("created_at"),
            n=Count("index"),
            size=Sum(Length("data")),
        )
        .order_by("bucket")
    )
    return [
        RateBucket(r["first"].timestamp(), r["last"].timestamp(), r["n"], r["size"] or 0)
        for r in rows
    ]
