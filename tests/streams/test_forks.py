"""Forks in storage: no copies, reads through the chain, and retention that never takes a
fork's prefix away."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from apps.projects.models import Project
from apps.retention.services import purge_expired, purge_preview
from apps.runs.services import runs_delete
from apps.streams.lineage import Span, spans
from apps.streams.models import Chunk, Stream
from apps.streams.selectors import chunks_from_index
from apps.streams.services import (
    ForkSpec,
    StreamConfig,
    chunks_append,
    chunks_purge,
    stream_create,
    stream_delete,
    streams_delete,
)
from streamdash.core.offsets import offset_for
from tests.factories import make_run, make_stream

JSON = StreamConfig(content_type="application/json")


def fork(project: Project, key: str, source: Stream, at: int, run_id: str | None = None) -> Stream:
    stream, created = stream_create(
        project=project,
        key=key,
        run_id=run_id,
        config=JSON,
        fork=ForkSpec(source.run_id, source.key, offset_for(at)),
    )
    assert created
    return stream


def view(stream: Stream) -> list[bytes]:
    stream.refresh_from_db()
    records = chunks_from_index(
        stream_id=stream.pk, start=0, end=stream.next_index, fork_index=stream.fork_index
    )
    assert [r.index for r in records] == list(range(stream.next_index))
    return [r.data for r in records]


def test_a_fork_of_a_fork_reads_each_range_from_where_it_is_stored(project: Project) -> None:
    root = make_stream(project, "root", chunks=[b"0", b"1", b"2"])
    middle = fork(project, "middle", root, 2)
    chunks_append(stream_id=middle.pk, chunks=[b"m2", b"m3"])
    leaf = fork(project, "leaf", middle, 3)
    chunks_append(stream_id=leaf.pk, chunks=[b"l3"])
    assert spans(leaf.pk) == [
        Span(root.pk, 0, 2),
        Span(middle.pk, 2, 3),
        Span(leaf.pk, 3, 2**63 - 1),
    ]
    assert view(leaf) == [b"0", b"1", b"m2", b"l3"]
    # A page that must stop early stops at a chunk, never in the middle of one.
    page = chunks_from_index(stream_id=leaf.pk, start=1, limit=2, fork_index=3)
    assert [r.data for r in page] == [b"1", b"m2"]
    assert Chunk.objects.filter(stream=leaf).count() == 1


def test_purge_leaves_a_source_with_forks_alone(project: Project) -> None:
    root = make_stream(project, "root", chunks=[b"0", b"1", b"2"])
    fork(project, "retry", root, 2)
    assert chunks_purge(stream_id=root.pk, batch_size=10).chunks == 0
    assert Chunk.objects.filter(stream=root).count() == 3


def test_deleting_a_source_for_good_copies_the_prefix_into_its_forks(project: Project) -> None:
    run = make_run(project)
    root = make_stream(project, "ai", run=run, chunks=[b"0", b"1", b"2"])
    retry = fork(project, "retry", root, 2)
    chunks_append(stream_id=retry.pk, chunks=[b"r2"])
    assert runs_delete(run_ids=[run.pk]) == 1
    assert not Stream.objects.filter(pk=root.pk).exists()
    retry.refresh_from_db()
    assert retry.forked_from_id is None
    assert retry.byte_size == 4
    assert view(retry) == [b"0", b"1", b"r2"]


def test_a_source_deleted_with_forks_goes_with_its_last_fork(project: Project) -> None:
    root = make_stream(project, "root", chunks=[b"0"])
    first, second = fork(project, "a", root, 1), fork(project, "b", root, 0)
    stream_delete(stream_id=root.pk)
    assert Stream.objects.get(pk=root.pk).deleted_at is not None
    stream_delete(stream_id=first.pk)
    assert Stream.objects.filter(pk=root.pk).exists()
    streams_delete(stream_ids=[second.pk])
    assert not Stream.objects.filter(pk=root.pk).exists()
    assert not Chunk.objects.exists()


def test_retention_neither_counts_nor_purges_a_fork_source(project: Project) -> None:
    root = make_stream(project, "root", chunks=[b"0", b"1"])
    fork(project, "retry", root, 2)
    Stream.objects.filter(pk=root.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    assert purge_preview().chunks_deleted == 0
    assert purge_expired().chunks_deleted == 0
    assert Chunk.objects.filter(stream=root).count() == 2
