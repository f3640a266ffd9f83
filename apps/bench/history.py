"""``streambench history``: the history page of a 1,000,000-chunk stream, first / middle / last.

The stream is filled once with COPY (PostgreSQL) or multi-row inserts (SQLite) through the
engine's own batch insert. Each page is rendered in-process with Django's test client (the
view, its keyset query and the template), several times; the baseline in the same run is the
bare keyset query for the same page, so the ratio shows what rendering adds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from apps.projects.models import Project
from apps.streams import inserts
from apps.streams.models import Stream
from apps.streams.selectors import chunks_from_index

PAGE = 50
_FILL_BATCH = 10_000


def _stream(chunks: int, say: Callable[[str], None]) -> Stream:
    project, _ = Project.objects.get_or_create(name="bench-history")
    key = f"history-{chunks}"
    stream = Stream.objects.filter(project=project, run=None, key=key).first()
    if stream is not None and stream.next_index == chunks:
        say(f"reusing stream {stream.pk} ({chunks:,} chunks)")
        return stream
    if stream is not None:
        stream.delete()
    stream = Stream.objects.create(project=project, key=key, content_type="application/json")
    started = time.perf_counter()
    now = timezone.now()
    for start in range(0, chunks, _FILL_BATCH):
        count = min(_FILL_BATCH, chunks - start)
        rows = [b'{"delta": "token %d", "i": %d}' % (i, i) for i in range(start, start + count)]
        with transaction.atomic():
            inserts.insert_chunks(
                stream_id=stream.pk, start=start, chunks=rows, producer="", now=now
            )
    size = sum(len(b'{"delta": "token %d", "i": %d}' % (i, i)) for i in range(chunks))
    Stream.objects.filter(pk=stream.pk).update(next_index=chunks, byte_size=size)
    say(
        f"filled stream {stream.pk} with {chunks:,} chunks in {time.perf_counter() - started:.1f} s"
    )
    stream.refresh_from_db()
    return stream


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(chunks: int, repeat: int, say: Callable[[str], None]) -> dict[str, float]:
    if not settings.DEBUG:
        # Production settings serve hashed static files: build the manifest as a deploy would.
        call_command("collectstatic", interactive=False, verbosity=0)
    stream = _stream(chunks, say)
    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True}
    )
    client = Client(HTTP_HOST="localhost")  # an allowed host outside the test runner
    client.force_login(user)
    url = f"/streams/{stream.pk}/history/"
    figures: dict[str, float] = {}
    for name, start in (("first", 0), ("middle", chunks // 2), ("last", chunks - PAGE)):

        def page(start: int = start) -> None:
            response = client.get(url, {"start": start})
            assert response.status_code == 200, response.status_code
            assert f">{start}<".encode() in response.content or start == 0

        def query(start: int = start) -> None:
            chunks_from_index(stream_id=stream.pk, start=start, limit=PAGE)

        render_ms = _median_ms(page, repeat)
        query_ms = _median_ms(query, repeat)
        figures[name] = render_ms
        say(
            f"{name:6} page (index {start:>9,}): render {render_ms:7.2f} ms, "
            f"keyset query alone {query_ms:6.2f} ms, ratio {render_ms / query_ms:5.1f}"
        )
    return figures
