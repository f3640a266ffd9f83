"""Run services for retention's bulk changes: expiry set, expired and deleted in batches, each
batch's runs told after its commit."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.projects.models import Project
from apps.runs import services
from apps.runs.models import Run
from apps.runs.services import run_create, run_update, runs_expire, runs_set_expiry
from apps.streams.notify import run_group
from streamdash.core.runstatus import RunStatus
from tests.factories import make_project


def _finished(project: Project, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        run = run_create(project=project, task_id="t")
        ids.append(run_update(project=project, run_id=run.id, status=RunStatus.COMPLETED).id)
    return ids


def test_runs_set_expiry_to_a_time_or_an_expression(project: Project) -> None:
    ids = _finished(project, 3)
    before = dict(Run.objects.values_list("pk", "updated_at"))
    soon = timezone.now() + dt.timedelta(hours=1)
    assert runs_set_expiry(run_ids=ids[:2], expires_at=soon) == 2
    assert runs_set_expiry(run_ids=ids[2:], expires_at=F("finished_at") + dt.timedelta(1)) == 1
    runs = {run.pk: run for run in Run.objects.all()}
    assert [runs[pk].expires_at for pk in ids[:2]] == [soon, soon]
    assert runs[ids[2]].expires_at == runs[ids[2]].finished_at + dt.timedelta(days=1)
    # The hub's re-check of watched runs compares updated_at: it moves with the expiry.
    assert all(runs[pk].updated_at > before[pk] for pk in ids)


def test_runs_set_expiry_leaves_expired_runs_alone(project: Project) -> None:
    ids = _finished(project, 2)
    runs_expire(run_ids=ids[:1])
    kept = Run.objects.get(pk=ids[0]).expires_at
    assert runs_set_expiry(run_ids=ids, expires_at=timezone.now()) == 1
    assert Run.objects.get(pk=ids[0]).expires_at == kept


@pytest.mark.django_db(transaction=True)
async def test_runs_set_expiry_tells_each_run_after_each_batch_commits(monkeypatch) -> None:
    monkeypatch.setattr(services, "_BATCH", 2)
    project, _ = await sync_to_async(make_project)()
    ids = await sync_to_async(_finished)(project, 5)
    layer = get_channel_layer()
    channel = await layer.new_channel("test.")
    for pk in ids:
        await layer.group_add(run_group(pk), channel)

    def in_one_outer_transaction() -> int:
        # Each batch's callback waits for the outer commit: each must still name its own runs.
        with transaction.atomic():
            return runs_set_expiry(run_ids=ids, expires_at=timezone.now())

    assert await sync_to_async(in_one_outer_transaction)() == 5
    told = [await layer.receive(channel) for _ in ids]
    assert sorted(m["run"] for m in told) == sorted(ids)
    assert {(m["type"], m["status"]) for m in told} == {("run.changed", "completed")}
