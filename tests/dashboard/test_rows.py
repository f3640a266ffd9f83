"""The live viewer's rows, rendered once per process by string formatting, are the same markup
as the history page's ``chunk-row`` partial, escaped the same way."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from apps.dashboard import chunks
from apps.dashboard.rows import chunk_rows
from apps.streams.records import ChunkRecord

RECORDS = [
    ChunkRecord(0, b'{"delta": "hello"}', 1764633600.123456, ""),
    ChunkRecord(7, b"<script>alert(1)</script>", 1764633601.5, 'p"<b>'),
    ChunkRecord(12, b"\x00\xff\xfe binary", 1764633602.0, "producer-1"),
    ChunkRecord(99, b'"' + b"x" * 5000 + b'"', 1764633603.999999, "w"),
]


@pytest.mark.parametrize("kind", ["json", "text", "bytes"])
def test_rows_match_the_template_partial(kind: str) -> None:
    for offset, record in enumerate(RECORDS):
        stream_id = 1000 + offset + len(kind)  # a stream of its own: no cached row from before
        expected = render_to_string(
            "dashboard/partials.html#chunk-row",
            {
                "stream": {"pk": stream_id},
                "r": record,
                "preview": chunks.preview(record.data, kind),
            },
        )
        assert chunk_rows(stream_id, [record], kind).strip() == expected.strip()


def test_rows_escape_untrusted_bytes() -> None:
    html = chunk_rows(2000, RECORDS[1:2], "text")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert '<b>' not in html
