"""One exporter behind the API's ``?format=ndjson`` and the dashboard's downloads."""

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
