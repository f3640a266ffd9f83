"""Content kinds: what a stream's content type means for storing, sending and showing chunks.

One rule, the protocol's (PROTOCOL.md §1): ``application/json`` streams hold JSON values;
``text/*`` streams hold text, sent as-is in SSE; every other type is bytes, sent as base64 in
SSE and shown as text in the dashboard only when the bytes happen to be printable. So
``application/x-ndjson`` and ``application/xml`` are bytes, as a Durable Streams client expects.
"""

from __future__ import annotations

import base64
import json
from typing import Literal

ContentKind = Literal["json", "text", "bytes"]


def base_content_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(content_type: str) -> bool:
    return base_content_type(content_type) == "application/json"


def content_kind(content_type: str) -> ContentKind:
    media = base_content_type(content_type)
    if media == "application/json":
        return "json"
    if media.startswith("text/"):
        return "text"
    return "bytes"


def chunk_fields(data: bytes, content_type: str) -> bytes:
    """One chunk as the ``"data": …`` member of a JSON object (with ``"encoding"`` for bytes):
    JSON chunks embed their exact bytes, text becomes a string, bytes become base64."""
    kind = content_kind(content_type)
    if kind == "json":
        return b'"data":' + data
    if kind == "text":
        return b'"data":' + json.dumps(data.decode("utf-8", errors="replace")).encode()
    return b'"data":"' + base64.b64encode(data) + b'","encoding":"base64"'


def chunk_object(prefix: dict[str, object], data: bytes, content_type: str) -> bytes:
    """``{**prefix, "data": …}`` as JSON bytes, for NDJSON lines and run subscriptions."""
    head = json.dumps(prefix, separators=(",", ":"))[:-1].encode()
    return head + b"," + chunk_fields(data, content_type) + b"}"
