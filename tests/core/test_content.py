"""One content-kind rule for SSE, NDJSON, the WebSocket route and the dashboard."""

from __future__ import annotations

import base64
import json

import pytest

from streamdash.core.content import chunk_object, content_kind


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/json", "json"),
        ("Application/JSON; charset=utf-8", "json"),
        ("text/plain", "text"),
        ("text/markdown; charset=utf-8", "text"),
        # The protocol's rule: only text/* travels as text; a Durable Streams client decodes
        # every other type from base64.
        ("application/x-ndjson", "bytes"),
        ("application/xml", "bytes"),
        ("application/octet-stream", "bytes"),
        ("", "bytes"),
    ],
)
def test_content_kind_follows_the_protocol(content_type: str, kind: str) -> None:
    assert content_kind(content_type) == kind


def test_content_chunk_object_per_kind() -> None:
    prefix = {"index": 3}
    assert json.loads(chunk_object(prefix, b'{"a": 1.50}', "application/json")) == {
        "index": 3,
        "data": {"a": 1.5},
    }
    # JSON chunks are embedded byte for byte, never re-serialised.
    assert b'{"a": 1.50}' in chunk_object(prefix, b'{"a": 1.50}', "application/json")
    assert json.loads(chunk_object(prefix, "é<".encode(), "text/plain")) == {
        "index": 3,
        "data": "é<",
    }
    raw = b"\x00\xff\n"
    assert json.loads(chunk_object(prefix, raw, "application/x-ndjson")) == {
        "index": 3,
        "data": base64.b64encode(raw).decode(),
        "encoding": "base64",
    }
