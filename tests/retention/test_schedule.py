"""One scheduled purge per interval for the deployment, whatever the number of server
processes: each claims the interval in the database first (``purge_claim``), only the
claimant purges; on PostgreSQL the advisory lock is taken before the plan is read."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.projects.models import Project
from apps.retention import scheduler
from apps.retention.models import PurgeMark
from apps.retention.services import _ADVISORY_LOCK, purge_claim, purge_expired
from apps.runs.models import Run
from apps.streams.models import Chunk
from tests.retention.test_purge import finished_run

HOUR = 3600.0


def _expired_run(project: Project) -> Run:
    run = finished_run(project, chunks=3)
    Run.objects.filter(pk=run.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    return run


def _has_chunks(run: Run) -> bool:
    return Chunk.objects.filter(stream__run_id=run.pk).exists()


def test_purge_claim_once_per_interval(db) -> None:
    now = timezone.now()
    assert purge_claim(every=HOUR, now=now) is True
    assert purge_claim(every=HOUR, now=now) is False  # another process, same tick
    assert purge_claim(every=HOUR, now=now + dt.timedelta(seconds=HOUR * 0.5)) is False
    assert purge_claim(every=HOUR, now=now + dt.timedelta(seconds=HOUR * 0.9)) is True


@pytest.mark.django_db(transaction=True)
def test_purge_claim_one_winner_among_concurrent_processes() -> None:
    purge_claim(every=HOUR, now=timezone.now() - dt.timedelta(days=1))  # the row exists
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        try:
            barrier.wait(10)
            results.append(purge_claim(every=HOUR))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 5 + [True]


def test_scheduled_passes_of_two_processes_purge_once_per_interval(project: Project) -> None:
    first = _expired_run(project)
    scheduler._purge_once(HOUR)  # process A's tick: claims, purges
    assert not _has_chunks(first)
    second = _expired_run(project)
    scheduler._purge_once(HOUR)  # process B's tick, same interval: nothing
    assert _has_chunks(second)
    PurgeMark.objects.update(started_at=timezone.now() - dt.timedelta(seconds=HOUR))
    scheduler._purge_once(HOUR)  # the next interval: one of them purges again
    assert not _has_chunks(second)


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the advisory lock is PostgreSQL's",
)
@pytest.mark.django_db(transaction=True)
def test_purge_behind_the_lock_reads_no_plan(project: Project) -> None:
    """While another purge (cron, another process) holds the lock, a purge skips before
    reading what is due: no N processes running the plan's aggregate queries side by side."""
    run = _expired_run(project)
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [_ADVISORY_LOCK])
        with CaptureQueriesContext(connection) as queries:
            report = purge_expired()
        assert report.skipped
        assert not [q for q in queries.captured_queries if "streams_stream" in q["sql"]]
        assert _has_chunks(run)
    # Lock released: the purge goes ahead (a scheduler thread left by an earlier test may
    # still hold the lock for a moment).
    deadline = time.monotonic() + 10
    while purge_expired().skipped and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _has_chunks(run)
