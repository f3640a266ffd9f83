"""SSE data frames (apps/api/sse.py): the bytes a reader parses."""

from __future__ import annotations

import base64

from apps.api.sse import data_frame


def test_sse_frame_of_compact_json_is_one_data_line():
    frame = data_frame([b'{"a":1}', b"[2]", b'"three"'], "json")
    assert frame == b'event: data\ndata:[{"a":1},[2],"three"]\n\n'


def test_sse_frame_of_json_with_line_breaks_is_one_data_line_per_line():
    frame = data_frame([b'{"a":\n1}', b"2\r\n"], "json")
    assert frame == b'event: data\ndata:[{"a":\ndata:1},2\ndata:]\n\n'


def test_sse_frame_of_no_json_chunks_is_an_empty_array():
    assert data_frame([], "json") == b"event: data\ndata:[]\n\n"


def test_sse_frame_of_text_keeps_its_lines():
    assert data_frame([b"one\ntw", b"o"], "text") == b"event: data\ndata:one\ndata:two\n\n"


def test_sse_frame_of_bytes_is_the_base64_of_the_joined_chunks():
    chunks = [bytes(range(256)), b"\x00", b"\xff\xfe"]
    encoded = base64.b64encode(b"".join(chunks))
    assert data_frame(chunks, "base64") == b"event: data\ndata:" + encoded + b"\n\n"
