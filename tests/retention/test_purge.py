"""Retention: policies, the purge (dry run, bounded batches, what it frees), 410 afterwards,
the command, the admin actions and the in-server schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.db.models import Sum
from django.db.models.functions import Length
from django.test import Client
from django.utils import timezone

from apps.api.subscribe_views import RUN_VIEWS
from apps.projects.models import Project
from apps.retention import scheduler
from apps.retention.models import TaskRetentionPolicy
from apps.retention.policies import policy_apply, retention_expire_now, retention_extend
from apps.retention.services import purge_expired, purge_preview
from apps.runs.expiry import retention_days_for
from apps.runs.models import Run
from apps.runs.services import run_create, run_update
from apps.streams import notify
from apps.streams.hub import get_hub
from apps.streams.live import follow
from apps.streams.models import Chunk, Producer, Stream
from apps.streams.notify import stream_group
from streamdash.core.errors import Gone, StreamNotFound
from streamdash.core.onserve import OnServe
from streamdash.core.runstatus import RunStatus
from tests.factories import make_project, make_stream

JSON = "application/json"
LATER = dt.timedelta(days=29)  # just past the default 28 days


def finished_run(project: Project, chunks: int = 10, task_id: str = "t", key: str = "ai") -> Run:
    run = run_create(project=project, task_id=task_id)
    make_stream(project, key, run=run, chunks=[b'{"n":%d}' % i for i in range(chunks)])
    return run_update(project=project, run_id=run.id, status=RunStatus.COMPLETED)


def stored() -> tuple[int, int]:
    size = Chunk.objects.aggregate(b=Sum(Length("data")))["b"] or 0
    return Chunk.objects.count(), size


def snapshot() -> list[tuple]:
    return [
        *Run.objects.order_by("pk").values_list("pk", "status", "expires_at"),
        *Stream.objects.order_by("pk").values_list("pk", "first_index", "next_index", "byte_size"),
        stored(),
    ]


def test_policy_default_project_and_task(project: Project, settings) -> None:
    settings.STREAMDASH_RETENTION_DAYS = 28
    assert retention_days_for(project=project, task_id="t") == 28
    project.retention_days = 7
    project.save()
    assert retention_days_for(project=project, task_id="t") == 7
    TaskRetentionPolicy.objects.create(project=project, task_id="t", retention_days=2)
    assert retention_days_for(project=project, task_id="t") == 2
    assert retention_days_for(project=project, task_id="other") == 7


def test_policy_apply_recomputes_expiry_of_finished_runs(project: Project) -> None:
    run = finished_run(project, chunks=1)
    assert run.expires_at == run.finished_at + dt.timedelta(days=28)
    TaskRetentionPolicy.objects.create(project=project, task_id="t", retention_days=3)
    assert policy_apply(project=project, task_id="t") == 1
    run.refresh_from_db()
    assert run.expires_at == run.finished_at + dt.timedelta(days=3)


def test_extend_counts_from_now_for_runs_already_due(project: Project) -> None:
    due, later = finished_run(project, chunks=1), finished_run(project, chunks=1, key="b")
    past = timezone.now() - dt.timedelta(days=1)
    Run.objects.filter(pk=due.pk).update(expires_at=past)
    before = timezone.now()
    assert retention_extend(projects=[project], days=10) == 2
    assert Run.objects.get(pk=due.pk).expires_at >= before + dt.timedelta(days=10)
    assert Run.objects.get(pk=later.pk).expires_at == later.expires_at + dt.timedelta(days=10)


def test_expires_at_is_in_the_api(api: Client, project: Project) -> None:
    run = finished_run(project, chunks=1)
    assert api.get(f"/api/v1/runs/{run.id}").json()["expires_at"] is not None


def test_purge_dry_run_changes_nothing(project: Project) -> None:
    finished_run(project, chunks=25)
    before = snapshot()
    report = purge_expired(dry_run=True, now=timezone.now() + LATER)
    assert report.dry_run
    assert (report.runs_expired, report.streams_purged, report.chunks_deleted) == (1, 1, 25)
    assert snapshot() == before
    out = io.StringIO()
    call_command("purge_expired", "--dry-run", stdout=out)
    assert "would free 0 chunks" in out.getvalue()  # nothing is due yet
    assert snapshot() == before


def test_purge_frees_exactly_what_the_dry_run_said(project: Project) -> None:
    keep = finished_run(project, chunks=5)
    Run.objects.filter(pk=keep.pk).update(expires_at=timezone.now() + dt.timedelta(days=900))
    gone = [finished_run(project, chunks=n, key=f"k{n}") for n in (3, 40, 1)]
    unfinished = run_create(project=project, task_id="t")
    make_stream(project, "live", run=unfinished, chunks=[b"1", b"2"])
    chunks_before, bytes_before = stored()
    now = timezone.now() + LATER
    plan = purge_preview(now=now)
    progress = []
    report = purge_expired(now=now, batch_size=7, progress=progress.append)
    chunks_after, bytes_after = stored()
    assert report.chunks_deleted == plan.chunks_deleted == 44 == chunks_before - chunks_after
    assert report.bytes_freed == plan.bytes_freed == bytes_before - bytes_after
    assert report.streams_purged == plan.streams_purged == 3
    assert report.runs_expired == plan.runs_expired == 3
    # Bounded batches: 40 chunks at 7 a transaction is 6 batches for that stream alone.
    assert len(progress) >= 6 + 1 + 1 + 1
    assert {r.status for r in Run.objects.filter(pk__in=[r.pk for r in gone])} == {"expired"}
    assert Chunk.objects.filter(stream__run=keep).count() == 5
    assert Chunk.objects.filter(stream__run=unfinished).count() == 2
    # Tombstones: streams empty, floor at the tail, sizes zero.
    for stream in Stream.objects.filter(run__in=gone):
        assert stream.first_index == stream.next_index
        assert stream.byte_size == 0
    # A second purge finds nothing.
    again = purge_expired(now=now)
    assert (again.chunks_deleted, again.runs_expired) == (0, 0)


def test_purge_stopped_half_way_leaves_410_with_earliest_index(api: Client, project) -> None:
    run = finished_run(project, chunks=10)
    stream = Stream.objects.get(run=run)

    class Stop(Exception):
        pass

    def stop_after_first_batch(report):
        raise Stop

    with pytest.raises(Stop):
        purge_expired(now=timezone.now() + LATER, batch_size=4, progress=stop_after_first_batch)
    stream.refresh_from_db()
    assert stream.first_index == 4
    assert Chunk.objects.filter(stream=stream).count() == 6
    url = f"/api/v1/runs/{run.id}/streams/ai"
    response = api.get(f"{url}?offset=-1")
    assert response.status_code == 410
    assert response.json()["error"]["earliest_index"] == 4
    assert api.get(f"{url}?start_index=3").status_code == 410
    kept = api.get(f"{url}?start_index=4")
    assert kept.status_code == 200
    assert kept.json()[0] == {"n": 4}


def test_purged_run_reads_410_then_tombstone_goes(api: Client, project, settings) -> None:
    run = finished_run(project, chunks=3)
    now = timezone.now() + LATER
    purge_expired(now=now)
    response = api.get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1")
    assert response.status_code == 410
    assert response.json()["error"]["earliest_index"] == 3
    assert api.get(f"/api/v1/runs/{run.id}").json()["status"] == "expired"
    settings.STREAMDASH_PURGE_TOMBSTONE_DAYS = 7
    assert purge_expired(now=now + dt.timedelta(days=8)).runs_deleted == 1
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not Stream.objects.filter(run_id=run.pk).exists()


def test_purge_removes_expired_standalone_streams(project: Project) -> None:
    stream = make_stream(project, "old", chunks=[b"1", b"2"])
    Producer.objects.create(stream=stream, producer_id="p", epoch=0, last_seq=1)
    Stream.objects.filter(pk=stream.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    fresh = make_stream(project, "fresh", chunks=[b"1"])
    report = purge_expired()
    assert report.chunks_deleted == 2
    assert not Stream.objects.filter(pk=stream.pk).exists()
    assert not Producer.objects.filter(stream_id=stream.pk).exists()
    assert Stream.objects.filter(pk=fresh.pk).exists()


def test_purge_limited_to_projects(project: Project) -> None:
    other, _ = make_project()
    finished_run(project, chunks=2)
    theirs = finished_run(other, chunks=2)
    report = purge_expired(now=timezone.now() + LATER, projects=[project])
    assert report.chunks_deleted == 2
    assert Chunk.objects.filter(stream__run=theirs).count() == 2


def test_purge_command_reports(project: Project) -> None:
    run = finished_run(project, chunks=4)
    Run.objects.filter(pk=run.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    out = io.StringIO()
    call_command("purge_expired", "--batch-size", "3", stdout=out, stderr=io.StringIO())
    assert "freed 4 chunks" in out.getvalue()
    assert Chunk.objects.count() == 0


# --- live readers are told at once ---------------------------------------------------------


@pytest.fixture
def slow_tail_check(settings) -> None:
    """Without a notification, readers would learn of a purge at the hub's next re-check:
    make that too late for these tests."""
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60


async def _expired_standalone_stream() -> Stream:
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, "old", chunks=[b"1", b"2"])
    return stream


async def _live_reader(stream: Stream, seen: list[int]) -> asyncio.Task[None]:
    async def read() -> None:
        async for batch in follow(stream.pk, 0, idle_timeout=30):
            if batch is not None:
                seen.extend(c.index for c in batch.chunks)

    reader = asyncio.create_task(read())
    for _ in range(50):
        await asyncio.sleep(0.02)
        if seen == [0, 1]:
            break
    await sync_to_async(Stream.objects.filter(pk=stream.pk).update)(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    return reader


@pytest.mark.django_db(transaction=True)
async def test_purge_ends_live_readers_of_a_deleted_stream_at_once(slow_tail_check) -> None:
    stream = await _expired_standalone_stream()
    seen: list[int] = []
    reader = await _live_reader(stream, seen)
    await sync_to_async(purge_expired)()
    with pytest.raises(StreamNotFound):
        await asyncio.wait_for(reader, 5)
    assert seen == [0, 1]


@pytest.mark.django_db(transaction=True)
async def test_purge_tells_run_subscribers_the_run_expired(slow_tail_check) -> None:
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(finished_run)(project, 3)
    async with get_hub().watch_run(run.id, RUN_VIEWS) as state:
        assert state.snapshot is not None
        assert b'"status": "completed"' in state.snapshot.event
        version = state.version
        await sync_to_async(purge_expired)(now=timezone.now() + LATER)
        await asyncio.wait_for(state.changed(version), 5)
        assert b'"status": "expired"' in state.snapshot.event


@pytest.mark.django_db(transaction=True)
async def test_expire_now_tells_run_subscribers_the_new_expiry(slow_tail_check) -> None:
    """The run JSON of /subscribe (and the dashboard's run page) shows expires_at."""
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(finished_run)(project, 1)
    async with get_hub().watch_run(run.id, RUN_VIEWS) as state:
        version = state.version
        assert await sync_to_async(retention_expire_now)(projects=[project]) == 1
        await asyncio.wait_for(state.changed(version), 5)
        assert state.snapshot is not None
        expires_at = await sync_to_async(Run.objects.values_list("expires_at", flat=True).get)(
            pk=run.pk
        )
        assert expires_at <= timezone.now()
        assert expires_at.isoformat().replace("+00:00", "Z").encode() in state.snapshot.event


@pytest.mark.django_db(transaction=True)
async def test_purge_of_a_tombstone_tells_its_readers(slow_tail_check, settings) -> None:
    settings.STREAMDASH_PURGE_TOMBSTONE_DAYS = 7
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(finished_run)(project, 3)
    stream = await sync_to_async(Stream.objects.get)(run=run)
    now = timezone.now() + LATER
    await sync_to_async(purge_expired)(now=now)
    layer = get_channel_layer()
    channel = await layer.new_channel("test.")
    await layer.group_add(stream_group(stream.pk), channel)
    async with get_hub().watch_run(run.id, RUN_VIEWS) as state:
        version = state.version
        report = await sync_to_async(purge_expired)(now=now + dt.timedelta(days=8))
        assert report.runs_deleted == 1
        await asyncio.wait_for(state.changed(version), 5)
        assert state.snapshot is None  # the run is gone: its subscribers end
    message = await asyncio.wait_for(layer.receive(channel), 5)
    assert message == {"type": "stream.deleted", "stream": stream.pk}


@pytest.mark.django_db(transaction=True)
async def test_purge_gives_a_reader_below_it_410_at_once(slow_tail_check) -> None:
    """A reader left below the purge point (here: between two of its pages) ends with 410 and
    the earliest index as soon as the purge commits, not at the hub's next tail check."""
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(finished_run)(project, 10)
    stream = await sync_to_async(Stream.objects.get)(run=run)
    reader = follow(stream.pk, 0, page=2)
    try:
        batch = await anext(reader)
        assert batch is not None
        assert [c.index for c in batch.chunks] == [0, 1]
        await sync_to_async(purge_expired)(now=timezone.now() + LATER)

        async def read_on() -> None:
            async for _ in reader:
                pass

        with pytest.raises(Gone) as gone:
            await asyncio.wait_for(read_on(), 5)
        assert gone.value.facts["earliest_index"] == 10
    finally:
        await reader.aclose()


# --- admin --------------------------------------------------------------------------------


def _action(admin_client: Client, project: Project, action: str, **extra: str):
    return admin_client.post(
        "/admin/projects/project/",
        {"action": action, "_selected_action": [project.pk], **extra},
    )


def test_admin_expire_now_confirms_then_expires(admin_client: Client, project: Project) -> None:
    run = finished_run(project, chunks=6)
    page = _action(admin_client, project, "expire_now")
    assert page.status_code == 200
    assert b"Yes, I" in page.content
    assert page.context["rows"][0][1].chunks_deleted == 6  # what will be deleted
    assert Run.objects.get(pk=run.pk).expires_at > timezone.now()  # nothing yet
    done = _action(admin_client, project, "expire_now", confirm="yes")
    assert done.status_code == 302
    assert Run.objects.get(pk=run.pk).expires_at <= timezone.now()


def test_admin_purge_now_confirms_then_purges(admin_client: Client, project: Project) -> None:
    run = finished_run(project, chunks=6)
    Run.objects.filter(pk=run.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    page = _action(admin_client, project, "purge_now")
    assert page.context["rows"][0][1].chunks_deleted == 6
    assert Chunk.objects.count() == 6
    assert _action(admin_client, project, "purge_now", confirm="yes").status_code == 302
    assert Chunk.objects.count() == 0


def test_admin_extend_retention(admin_client: Client, project: Project) -> None:
    run = finished_run(project, chunks=1)
    before = run.expires_at
    page = _action(admin_client, project, "extend_retention")
    assert b'name="days"' in page.content
    assert (
        _action(admin_client, project, "extend_retention", confirm="yes", days="10").status_code
        == 302
    )
    assert Run.objects.get(pk=run.pk).expires_at == before + dt.timedelta(days=10)
    # A bad number re-shows the form and changes nothing.
    page = _action(admin_client, project, "extend_retention", confirm="yes", days="-3")
    assert page.status_code == 200
    assert Run.objects.get(pk=run.pk).expires_at == before + dt.timedelta(days=10)


def test_admin_actions_need_csrf(db, django_user_model, project: Project) -> None:
    user = django_user_model.objects.create_superuser("a2", "b@example.com", "pw-123456789")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    finished_run(project, chunks=2)
    response = client.post(
        "/admin/projects/project/",
        {"action": "expire_now", "_selected_action": [project.pk], "confirm": "yes"},
    )
    assert response.status_code == 403


# --- schedule ------------------------------------------------------------------------------


async def test_scheduler_off_switch(settings) -> None:
    settings.STREAMDASH_PURGE_INTERVAL_SECONDS = 0
    assert scheduler.ensure_started() is False


async def test_scheduler_starts_once_per_loop_and_only_on_a_real_server(settings) -> None:
    settings.STREAMDASH_PURGE_INTERVAL_SECONDS = 3600
    on_serve = OnServe(scheduler.ensure_started)  # as the ASGI entry calls it
    on_serve({"type": "http"})  # a test client: no "server" in the scope
    assert asyncio.get_running_loop() not in scheduler._started
    on_serve({"type": "http", "server": ("127.0.0.1", 80)})
    assert asyncio.get_running_loop() in scheduler._started
    assert scheduler.ensure_started() is False  # once per loop
    for task in list(scheduler._tasks):
        task.cancel()


@pytest.mark.django_db(transaction=True)
async def test_scheduler_loop_purges(settings, monkeypatch) -> None:
    from asgiref.sync import sync_to_async

    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(finished_run)(project, 3)
    await sync_to_async(Run.objects.filter(pk=run.pk).update)(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    monkeypatch.setattr(scheduler.random, "uniform", lambda a, b: 0.001)
    task = asyncio.create_task(scheduler._loop(0.05))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not await sync_to_async(Chunk.objects.filter(stream__run_id=run.pk).exists)():
                break
        assert not await sync_to_async(Chunk.objects.filter(stream__run_id=run.pk).exists)()
    finally:
        task.cancel()


@pytest.mark.django_db(transaction=True)
async def test_scheduled_purge_tells_this_servers_readers(slow_tail_check, monkeypatch) -> None:
    """The schedule purges on a thread of its own; its notifications are handed to the
    server's event loop, where the hub listens (not sent from a throwaway loop per message)."""
    stream = await _expired_standalone_stream()
    seen: list[int] = []
    reader = await _live_reader(stream, seen)

    def no_throwaway_loop(fn):
        raise AssertionError("a notification left through async_to_sync")

    monkeypatch.setattr(notify, "async_to_sync", no_throwaway_loop)
    monkeypatch.setattr(scheduler.random, "uniform", lambda a, b: 0.001)
    task = asyncio.create_task(scheduler._loop(3600))
    try:
        with pytest.raises(StreamNotFound):
            await asyncio.wait_for(reader, 5)
    finally:
        task.cancel()
