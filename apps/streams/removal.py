"""Deleting streams: for good, or, while forks read from one, marked deleted and kept for them
(``apps.streams.forks``). Live readers are told after the commit either way, so they end at
once rather than at the hub's next tail check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from apps.streams import forks, notify
from apps.streams.models import Stream
from apps.streams.rows import LockedStream
from streamdash.core.errors import NotFound, StreamDeleted

__all__ = ["delete_now", "is_expired", "stream_delete", "streams_delete"]


def is_expired(stream: Stream | LockedStream, now: dt.datetime) -> bool:
    return stream.expires_at is not None and stream.expires_at <= now


def delete_now(stream: Stream) -> bool:
    """Delete a stream, unless forks still read from it: then mark it deleted (410; its
    chunks stay for them). A source marked deleted or expired goes with its last fork.
    Returns whether the stream went for good."""
    stream_pk = stream.pk
    transaction.on_commit(lambda: notify.stream_deleted(stream_id=stream_pk))
    if forks.has_forks(stream_pk):
        if stream.deleted_at is None:
            stream.deleted_at = timezone.now()
            stream.save(update_fields=["deleted_at", "updated_at"])
        return False
    source_id = stream.forked_from_id
    stream.delete()
    if source_id is not None:
        _release(source_id)
    return True


def _release(source_id: int) -> None:
    """A fork of ``source_id`` went: the source goes too if it was only kept for its forks."""
    source = Stream.objects.select_for_update().filter(pk=source_id).first()
    if source is None or (source.deleted_at is None and not is_expired(source, timezone.now())):
        return
    if not forks.has_forks(source_id):
        delete_now(source)


def stream_delete(*, stream_id: int) -> None:
    """Delete a stream (see ``delete_now`` for one that forks read from)."""
    with transaction.atomic():
        stream = Stream.objects.select_for_update().filter(pk=stream_id).first()
        if stream is None:
            raise NotFound("Stream not found.")
        if stream.deleted_at is not None:
            raise StreamDeleted("The stream was deleted already.")
        delete_now(stream)


def streams_delete(*, stream_ids: Iterable[int]) -> int:
    """Delete streams with their chunks and producers, in one transaction (retention's
    bulk delete). Their live readers are told after the commit, as by ``stream_delete``,
    so they end at once rather than at the hub's next tail check. These go for good, forks or
    not: a fork of one of them gets its prefix copied first (``forks.detach``), and a source
    kept only for them goes too. Returns how many."""
    with transaction.atomic():
        found = list(
            Stream.objects.select_for_update()
            .filter(pk__in=list(stream_ids))
            .values_list("pk", "forked_from_id")
        )
        ids = [pk for pk, _ in found]
        forks.detach(ids)
        Stream.objects.filter(pk__in=ids).delete()
        transaction.on_commit(lambda: _notify_deleted(ids))
        for source_id in {source for _, source in found if source is not None} - set(ids):
            _release(source_id)
    return len(ids)


def _notify_deleted(stream_ids: list[int]) -> None:
    for pk in stream_ids:
        notify.stream_deleted(stream_id=pk)
