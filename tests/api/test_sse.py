"""SSE frames of a batch (apps/api/sse.py): the bytes a reader parses, built with one copy."""

from __future__ import annotations

import base64

from apps.api.sse import batch_frames

CONTROL = b'event: control\ndata:{"streamNextOffset":"x"}\nid:x\n\n'


def test_sse_batch_of_compact_json_is_one_data_line_then_the_control_frame():
    frames = batch_frames([b'{"a":1}', b"[2]", b'"three"'], "json", CONTROL)
    assert frames == b'event: data\ndata:[{"a":1},[2],"three"]\n\n' + CONTROL


def test_sse_batch_of_json_with_line_breaks_is_one_data_line_per_line():
    frames = batch_frames([b'{"a":\n1}', b"2\r\n"], "json", CONTROL)
    assert frames == b'event: data\ndata:[{"a":\ndata:1},2\ndata:]\n\n' + CONTROL


def test_sse_batch_of_text_keeps_its_lines():
    frames = batch_frames([b"one\ntw", b"o"], "text", CONTROL)
    assert frames == b"event: data\ndata:one\ndata:two\n\n" + CONTROL


def test_sse_batch_of_bytes_is_the_base64_of_the_joined_chunks():
    chunks = [bytes(range(256)), b"\x00", b"\xff\xfe"]
    frames = batch_frames(chunks, "base64", CONTROL)
    encoded = base64.b64encode(b"".join(chunks))
    assert frames == b"event: data\ndata:" + encoded + b"\n\n" + CONTROL


def test_sse_batch_without_chunks_is_the_control_frame_alone():
    assert batch_frames([], "json", CONTROL) == CONTROL
