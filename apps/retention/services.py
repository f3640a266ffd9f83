"""The retention purge: delete what has expired, in short transactions, and say what was freed.

What expires: the chunks of runs whose ``expires_at`` has passed, and standalone streams whose
``expires_at`` (Stream-TTL / Stream-Expires-At) has passed.

How: one stream at a time, ``batch_size`` chunks per transaction, oldest first, through
``apps.streams.services.chunks_purge``. Each batch raises ``Stream.first_index`` past the
chunks it deletes in the same transaction, so a purge cut off half way leaves a consistent
stream whose readers get 410 with the earliest index still there — never a silent skip — and
tells live readers the new floor after its commit. Locks are held for one batch only
(milliseconds), and the keyset range
``(s, first_index) <= (stream, index) < (s, first_index + batch)`` walks the primary key.

Afterwards a purged run stays as a tombstone (status ``expired``, its streams empty with
``first_index == next_index``) for ``STREAMDASH_PURGE_TOMBSTONE_DAYS``: a reader asking for
a purged position gets 410 naming the earliest index, not a 404 it could mistake for a typo.
Then the tombstone goes too. Purged standalone streams are deleted at once (an expired
standalone stream already answers 404).

Runs are expired and deleted, and streams deleted, through their services too
(``apps.runs.services.runs_expire``/``runs_delete``, ``apps.streams.services.streams_delete``),
which tell live readers after each commit: a subscriber sees the run become ``expired``, and a
reader of a deleted stream ends with "stream not found" at once, not at the next tail check.

One purge at a time: on PostgreSQL a session advisory lock, taken before the plan is read,
keeps the schedulers of N server processes (and cron) from purging side by side; every step is
idempotent anyway. One scheduled purge per interval for the deployment: each process's
scheduler first claims the interval (``purge_claim``: one conditional UPDATE of the
``PurgeMark`` row, atomic on SQLite and PostgreSQL alike), and only the claimant reads the plan
and purges; the others skip the pass without a query beyond the claim. The preview (the admin's
and ``--dry-run``) only reads.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from apps.projects.models import Project
from apps.retention.models import PurgeMark
from apps.runs.models import Run
from apps.runs.services import runs_delete, runs_expire
from apps.streams.models import Stream
from apps.streams.services import chunks_purge, streams_delete
from streamdash.core import metrics
from streamdash.core.runstatus import RunStatus

__all__ = ["PurgeReport", "purge_claim", "purge_expired", "purge_preview"]

_ADVISORY_LOCK = 0x5D_9E_7E_01  # "streamdash purge"


@dataclass(frozen=True)
class PurgeReport:
    dry_run: bool
    runs_expired: int = 0  # runs whose chunks were (or would be) purged
    streams_purged: int = 0  # streams emptied
    chunks_deleted: int = 0
    bytes_freed: int = 0
    runs_deleted: int = 0  # tombstones removed
    skipped: bool = False  # another purge held the lock
    seconds: float = 0.0
    streams: list[int] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (
            f"{verb} {self.chunks_deleted} chunks ({self.bytes_freed} bytes) in "
            f"{self.streams_purged} streams of {self.runs_expired} expired runs; "
            f"{self.runs_deleted} tombstones removed; {self.seconds:.2f} s"
        )


Progress = Callable[[PurgeReport], None]


def _expired_runs(now: dt.datetime, projects: Iterable[Project] | None) -> QuerySet[Run]:
    runs = Run.objects.filter(expires_at__lte=now)
    return runs.filter(project__in=list(projects)) if projects is not None else runs


def _due_streams(now: dt.datetime, projects: Iterable[Project] | None) -> QuerySet[Stream]:
    """Streams with chunks to delete: of expired runs, or standalone and expired."""
    streams = Stream.objects.filter(
        Q(run__expires_at__lte=now) | Q(run__isnull=True, expires_at__lte=now)
    )
    if projects is not None:
        streams = streams.filter(project__in=list(projects))
    return streams


def _tombstones(now: dt.datetime, projects: Iterable[Project] | None) -> QuerySet[Run]:
    grace = dt.timedelta(days=settings.STREAMDASH_PURGE_TOMBSTONE_DAYS)
    return _expired_runs(now - grace, projects).filter(status=RunStatus.EXPIRED)


def purge_preview(
    *, now: dt.datetime | None = None, projects: Iterable[Project] | None = None
) -> PurgeReport:
    """What a purge would delete now: a dry run (no writes, three aggregate queries)."""
    now = now or timezone.now()
    projects = list(projects) if projects is not None else None
    # A stream that forks read from keeps its chunks (apps.streams.forks): not counted.
    streams = _due_streams(now, projects).filter(
        first_index__lt=F("next_index"), forks__isnull=True
    )
    totals = streams.aggregate(
        n=Count("pk"), chunks=Sum(F("next_index") - F("first_index")), size=Sum("byte_size")
    )
    return PurgeReport(
        dry_run=True,
        runs_expired=_expired_runs(now, projects).exclude(status=RunStatus.EXPIRED).count(),
        streams_purged=totals["n"] or 0,
        chunks_deleted=totals["chunks"] or 0,
        bytes_freed=totals["size"] or 0,
        runs_deleted=_tombstones(now, projects).count(),
        streams=list(streams.values_list("pk", flat=True)),
    )


def purge_claim(*, every: float, now: dt.datetime | None = None) -> bool:
    """Claim the scheduled purge of the interval starting ``now``: True for one caller of any
    number sharing the database, False while the last claim is younger than most of
    ``every`` seconds (the schedulers' ticks jitter by ±10%, so 80% never skips a whole
    interval)."""
    now = now or timezone.now()
    PurgeMark.objects.get_or_create(pk=1, defaults={"started_at": now - dt.timedelta(days=1)})
    due = now - dt.timedelta(seconds=every * 0.8)
    return PurgeMark.objects.filter(pk=1, started_at__lte=due).update(started_at=now) == 1


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_ADVISORY_LOCK])
        return bool(cursor.fetchone()[0])


def _unlock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_LOCK])


def purge_expired(
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    projects: Iterable[Project] | None = None,
) -> PurgeReport:
    """Delete expired chunks, streams and run tombstones (see the module docstring)."""
    began = time.monotonic()
    now = now or timezone.now()
    projects = list(projects) if projects is not None else None
    if dry_run:
        return replace(purge_preview(now=now, projects=projects), seconds=time.monotonic() - began)
    batch_size = batch_size or settings.STREAMDASH_PURGE_BATCH_CHUNKS
    if not _try_lock():
        return PurgeReport(dry_run=False, skipped=True)
    try:
        plan = purge_preview(now=now, projects=projects)
        report = PurgeReport(dry_run=False)
        for stream_id in plan.streams:
            while True:
                batch = chunks_purge(stream_id=stream_id, batch_size=batch_size)
                report = replace(
                    report,
                    chunks_deleted=report.chunks_deleted + batch.chunks,
                    bytes_freed=report.bytes_freed + batch.bytes,
                    seconds=time.monotonic() - began,
                )
                if progress is not None and batch.chunks:
                    progress(report)
                if batch.done:
                    break
            report = replace(report, streams_purged=report.streams_purged + 1)
        # Runs and streams change through their services, in batches of runs, and tell live
        # readers after each commit.
        runs_expired = runs_expire(
            run_ids=_expired_runs(now, projects)
            .exclude(status=RunStatus.EXPIRED)
            .values_list("pk", flat=True)
        )
        # Emptied standalone streams go at once; their producers go with them.
        emptied = Stream.objects.filter(
            pk__in=plan.streams, run__isnull=True, first_index=F("next_index")
        )
        streams_delete(stream_ids=emptied.values_list("pk", flat=True))
        runs_deleted = runs_delete(run_ids=_tombstones(now, projects).values_list("pk", flat=True))
        report = replace(
            report,
            runs_expired=runs_expired,
            runs_deleted=runs_deleted,
            seconds=time.monotonic() - began,
        )
        if progress is not None:
            progress(report)
        metrics.purge_done(report.seconds, report.chunks_deleted, report.bytes_freed)
        return report
    finally:
        _unlock()
