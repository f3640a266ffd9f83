"""One exporter behind the API's ``?format=ndjson`` and the dashboard's downloads, over pages
bounded in bytes by the query."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from apps.streams.export import chunks_export
from tests.factories import make_project, make_stream


async def _export(stream, fmt: str, start: int = 0) -> bytes:
    parts = [
        part
        async for part in chunks_export(
            stream_id=stream.pk,
            content_type=stream.content_type,
            start=start,
            end=stream.next_index,
            fmt=fmt,  # type: ignore[arg-type]
        )
    ]
    return b"".join(parts)


@pytest.mark.django_db(transaction=True)
async def test_export_ndjson_and_raw_in_pages(settings) -> None:
    settings.STREAMDASH_READ_PAGE_CHUNKS = 2  # several pages for five chunks
    project, _ = await sync_to_async(make_project)()
    chunks = [b'{"n":%d}' % i for i in range(5)]
    stream = await sync_to_async(make_stream)(project, "j", chunks=chunks)
    lines = (await _export(stream, "ndjson", start=1)).splitlines()
    assert [json.loads(line)["index"] for line in lines] == [1, 2, 3, 4]
    assert json.loads(lines[0])["data"] == {"n": 1}
    assert json.loads(await _export(stream, "raw")) == [{"n": i} for i in range(5)]
    text = await sync_to_async(make_stream)(
        project, "t", content_type="text/plain", chunks=[b"a", b"b", b"c"]
    )
    assert await _export(text, "raw") == b"abc"
    assert [json.loads(line)["data"] for line in (await _export(text, "ndjson")).splitlines()] == [
        "a",
        "b",
        "c",
    ]


@pytest.mark.django_db
def test_chunks_page_is_bounded_in_bytes_by_the_query() -> None:
    from apps.streams.selectors import chunks_from_index

    project, _ = make_project()
    big = b'"' + b"x" * 998 + b'"'  # 1,000 bytes each
    stream = make_stream(project, "b", chunks=[big] * 10)
    page = chunks_from_index(stream_id=stream.pk, start=0, max_bytes=3_500)
    assert [r.index for r in page] == [0, 1, 2]
    # A chunk larger than the budget still comes alone, so a reader always moves on.
    assert [r.index for r in chunks_from_index(stream_id=stream.pk, start=4, max_bytes=10)] == [4]
    assert [r.index for r in chunks_from_index(stream_id=stream.pk, start=8, limit=5)] == [8, 9]
    assert chunks_from_index(stream_id=stream.pk, start=3, end=3) == []
