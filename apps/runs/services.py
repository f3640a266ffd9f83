"""Run lifecycle: create, update, claim, and retention's expiry changes, expire and delete.
Reaching a final status closes the run's streams. Every change tells the run's live readers
after the commit.

What a run stores is checked first (``streamdash.core.storable``): no NUL in its text, only
finite numbers in its JSON, so SQLite and PostgreSQL both answer such input with a 400."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models.expressions import Combinable
from django.utils import timezone

from apps.projects.models import Project
from apps.runs.expiry import retention_days_for
from apps.runs.ids import is_run_id, new_run_id
from apps.runs.models import Run
from apps.streams import notify
from apps.streams.models import Stream
from apps.streams.services import streams_close_for_run, streams_delete
from streamdash.core.errors import BadRequest, Conflict, NotFound
from streamdash.core.runstatus import FINAL_STATUSES, RunStatus
from streamdash.core.storable import check_json, check_text

# Which status may follow which. A final status is final.
_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset(
        {RunStatus.EXECUTING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}
    ),
    RunStatus.EXECUTING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}),
}


def run_create(
    *,
    project: Project,
    task_id: str,
    payload: Any = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    parent_id: str | None = None,
) -> Run:
    """A queued run. ``parent_id``: the run that triggers this one (of the same project); the
    new run's root is the parent's root, or the parent itself."""
    if not task_id or len(task_id) > 200:
        raise BadRequest("task_id is required (1–200 characters).", field="task_id")
    check_text(task_id, name="task_id", field="task_id")
    for name, value in (("payload", payload), ("metadata", metadata), ("tags", tags)):
        check_json(value, name=name, field=name)
    parent = _parent(project, parent_id) if parent_id is not None else None
    with transaction.atomic():
        run = Run.objects.create(
            id=new_run_id(),
            project=project,
            task_id=task_id,
            payload=payload,
            metadata=metadata or {},
            tags=tags or [],
            parent_id=parent.id if parent else "",
            root_id=(parent.root_id or parent.id) if parent else "",
        )
        transaction.on_commit(lambda: _notify_run(run))
    return run


def _parent(project: Project, parent_id: str) -> Run:
    parent = (
        Run.objects.filter(project=project, pk=parent_id).first() if is_run_id(parent_id) else None
    )
    if parent is None:
        raise BadRequest(
            f"parent_id {parent_id!r} is not a run of this project.", field="parent_id"
        )
    return parent


def _not_found(run_id: str) -> NotFound:
    return NotFound(f"Run {run_id!r} not found.", run=run_id)


def run_get(*, project: Project, run_id: str) -> Run:
    if not is_run_id(run_id):
        raise _not_found(run_id)
    run = Run.objects.filter(project=project, pk=run_id).first()
    if run is None:
        raise _not_found(run_id)
    return run


def run_update(
    *,
    project: Project,
    run_id: str,
    status: str | None = None,
    metadata: dict[str, Any] | None = None,
    output: Any = None,
    error: Any = None,
    set_output: bool = False,
    set_error: bool = False,
    waiting_for: str | None = None,
) -> Run:
    """Change a run. Metadata is merged key by key (a ``None`` value removes a key).
    ``waiting_for`` names the input the task waits for ("" when it stops waiting); a final
    status clears it, since nothing waits in a finished run."""
    if not is_run_id(run_id):
        raise _not_found(run_id)
    if waiting_for is not None:
        check_text(waiting_for, name="waiting_for", max_length=200, field="waiting_for")
    for name, value in (("metadata", metadata), ("output", output), ("error", error)):
        check_json(value, name=name, field=name)
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(project=project, pk=run_id).first()
        if run is None:
            raise _not_found(run_id)
        if status is not None and status != run.status:
            if status not in RunStatus.values:
                raise BadRequest(
                    f"Unknown status {status!r}; use one of {', '.join(RunStatus.values)}.",
                    field="status",
                )
            if status not in _TRANSITIONS.get(run.status, frozenset()):
                raise Conflict(
                    f"Run {run.id} is {run.status}; it cannot become {status}.",
                    status=run.status,
                )
            run.status = status
            if status == RunStatus.EXECUTING:
                run.started_at = now
            if status in FINAL_STATUSES:
                run.finished_at = now
                days = retention_days_for(project=run.project, task_id=run.task_id)
                run.expires_at = now + dt.timedelta(days=days)
                run.waiting_for = ""
                streams_close_for_run(run_id=run.id)
        elif run.is_final and (set_output or set_error):
            raise Conflict(f"Run {run.id} is {run.status}; its result cannot change.")
        if waiting_for is not None and not run.is_final:
            run.waiting_for = waiting_for
        elif waiting_for and run.is_final:
            raise Conflict(f"Run {run.id} is {run.status}; it waits for nothing.")
        if metadata:
            merged = dict(run.metadata)
            for key, value in metadata.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            run.metadata = merged
        if set_output:
            run.output = output
        if set_error:
            run.error = error
        run.save()
        transaction.on_commit(lambda: _notify_run(run))
    return run


def run_claim(*, project: Project, task_ids: list[str], worker: str) -> Run | None:
    """Claim the oldest queued run of these tasks for one worker, or None. Safe with many
    workers: the row is locked and skipped by the others (SKIP LOCKED on PostgreSQL, the
    database-wide write lock on SQLite)."""
    check_json(task_ids, name="task_ids", field="task_ids")
    check_text(worker, name="worker", max_length=100, field="worker")
    with transaction.atomic():
        run = (
            Run.objects.select_for_update(skip_locked=True)
            .filter(project=project, status=RunStatus.QUEUED, task_id__in=task_ids)
            .order_by("id")
            .first()
        )
        if run is None:
            return None
        run.status = RunStatus.EXECUTING
        run.started_at = timezone.now()
        run.claimed_by = worker
        run.save(update_fields=["status", "started_at", "claimed_by", "updated_at"])
        transaction.on_commit(lambda: _notify_run(run))
    return run


# Runs a transaction for retention's bulk changes: row locks held for milliseconds, and
# subscribers told batch by batch rather than after one long transaction.
_BATCH = 200

# (run id, status, parent id): what a run's subscribers, and its parent's, are told
RunChange = tuple[str, str, str]


def _write_in_batches(run_ids: Iterable[str], write: Callable[[list[str]], list[RunChange]]) -> int:
    """Apply ``write`` to the runs ``_BATCH`` at a time, each batch in a transaction of its
    own; the runs it changed are told after that commit. Returns how many runs changed."""
    ids = list(run_ids)
    changed = 0
    for start in range(0, len(ids), _BATCH):
        with transaction.atomic():
            runs = write(ids[start : start + _BATCH])
            # Bound now, not looked up at commit: under an outer transaction every batch's
            # callback runs after the loop.
            transaction.on_commit(functools.partial(_notify_runs, runs))
        changed += len(runs)
    return changed


def _lock_unexpired(run_ids: list[str]) -> list[RunChange]:
    return list(
        Run.objects.select_for_update()
        .filter(pk__in=run_ids)
        .exclude(status=RunStatus.EXPIRED)
        .values_list("pk", "status", "parent_id")
    )


def runs_set_expiry(*, run_ids: Iterable[str], expires_at: dt.datetime | Combinable) -> int:
    """Set when runs expire (retention's policy change, "extend", "expire now"): a time, or an
    expression over each run's row (``F("finished_at") + days``). Runs already expired are left
    alone: their chunks are gone, and their ``expires_at`` only times the tombstone.

    Subscribers are told after each commit, as of any other change: the run JSON that
    ``/subscribe`` sends and the dashboard's run page both show ``expires_at``, and a run made
    due by "expire now" should say so there at once. (``updated_at`` moves too, so the hub's
    re-check of watched runs would catch a lost notification.) Returns how many changed."""

    def write(batch: list[str]) -> list[RunChange]:
        runs = _lock_unexpired(batch)
        Run.objects.filter(pk__in=[pk for pk, _, _ in runs]).update(
            expires_at=expires_at, updated_at=timezone.now()
        )
        return runs

    return _write_in_batches(run_ids, write)


def runs_expire(*, run_ids: Iterable[str]) -> int:
    """Mark runs ``expired`` once retention has purged their chunks (runs already expired are
    left alone). Their subscribers and the dashboard hear of it after each commit, as of any
    other change. Returns how many runs changed."""

    def write(batch: list[str]) -> list[RunChange]:
        runs = _lock_unexpired(batch)
        # ``updated_at`` moves too: the hub's re-check of watched runs compares it.
        Run.objects.filter(pk__in=[pk for pk, _, _ in runs]).update(
            status=RunStatus.EXPIRED, updated_at=timezone.now()
        )
        return [(pk, RunStatus.EXPIRED, parent) for pk, _, parent in runs]

    return _write_in_batches(run_ids, write)


def runs_delete(*, run_ids: Iterable[str]) -> int:
    """Delete runs and their streams (retention's tombstones). After each commit each stream's
    live readers get ``stream.deleted`` and each run's subscribers a last ``run.changed``,
    after which the run is gone. Returns how many runs were deleted."""

    def write(batch: list[str]) -> list[RunChange]:
        runs = list(
            Run.objects.select_for_update()
            .filter(pk__in=batch)
            .values_list("pk", "status", "parent_id")
        )
        ids = [pk for pk, _, _ in runs]
        streams = Stream.objects.filter(run_id__in=ids).values_list("pk", flat=True)
        streams_delete(stream_ids=streams)
        Run.objects.filter(pk__in=ids).delete()
        return runs

    return _write_in_batches(run_ids, write)


def _notify_run(run: Run) -> None:
    notify.run_changed(run_id=run.id, status=run.status, parent_id=run.parent_id)


def _notify_runs(changes: list[RunChange]) -> None:
    for run_id, status, parent_id in changes:
        notify.run_changed(run_id=run_id, status=status, parent_id=parent_id)
