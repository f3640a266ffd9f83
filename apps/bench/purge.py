"""The purge scenario of ``manage.py streambench purge``: fill expired runs with chunks, time
``purge_expired``, report chunks deleted a second.

The target from the issue is 10 million chunks a day, i.e. about 116 chunks/s sustained; the
purge must beat that by a wide margin to catch up after downtime.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.projects.models import Project
from apps.retention.services import purge_expired
from apps.runs.models import Run
from apps.runs.services import run_create
from apps.streams.inserts import insert_chunks
from apps.streams.models import Stream
from streamdash.core.runstatus import RunStatus

__all__ = ["bench_purge"]

_FILL_BATCH = 10_000


def _fill(project: Project, *, runs: int, chunks_per_run: int, chunk_bytes: int) -> None:
    payload = b'"' + b"x" * max(0, chunk_bytes - 2) + b'"'
    now = timezone.now()
    for _ in range(runs):
        run = run_create(project=project, task_id="bench-purge")
        with transaction.atomic():
            stream = Stream.objects.create(
                project=project, run=run, key="ai", content_type="application/json", closed=True
            )
            for start in range(0, chunks_per_run, _FILL_BATCH):
                n = min(_FILL_BATCH, chunks_per_run - start)
                insert_chunks(
                    stream_id=stream.pk, start=start, chunks=[payload] * n, producer="", now=now
                )
            Stream.objects.filter(pk=stream.pk).update(
                next_index=chunks_per_run, byte_size=chunks_per_run * len(payload)
            )
    Run.objects.filter(project=project).update(
        status=RunStatus.COMPLETED, finished_at=now, expires_at=now - dt.timedelta(seconds=1)
    )


def bench_purge(
    *,
    runs: int = 20,
    chunks_per_run: int = 50_000,
    chunk_bytes: int = 100,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Fill, purge, clean up. Returns the measurements (one dict, printable as JSON)."""
    project = Project.objects.create(name=f"bench-purge-{uuid.uuid4().hex[:8]}")
    try:
        began = time.perf_counter()
        _fill(project, runs=runs, chunks_per_run=chunks_per_run, chunk_bytes=chunk_bytes)
        filled = time.perf_counter() - began
        report = purge_expired(batch_size=batch_size, projects=[project])
        return {
            "scenario": "purge",
            "runs": runs,
            "chunks": runs * chunks_per_run,
            "chunk_bytes": chunk_bytes,
            "batch_size": batch_size,
            "fill_seconds": round(filled, 2),
            "purge_seconds": round(report.seconds, 2),
            "chunks_deleted": report.chunks_deleted,
            "bytes_freed": report.bytes_freed,
            "chunks_per_second": round(report.chunks_deleted / max(report.seconds, 1e-9)),
            "target_chunks_per_second": round(10_000_000 / 86_400),
        }
    finally:
        project.delete()
