"""One chunk as a JSON value, for the run subscription and NDJSON export: JSON chunks embed
their exact bytes, text chunks become strings, other bytes become base64."""

from __future__ import annotations

import base64
import json

from apps.streams.payloads import base_content_type


def chunk_fields(data: bytes, content_type: str) -> bytes:
    """The ``"data": …`` member (and ``"encoding"`` for binary) as JSON text bytes."""
    media = base_content_type(content_type)
    if media == "application/json":
        return b'"data":' + data
    if media.startswith("text/"):
        return b'"data":' + json.dumps(data.decode("utf-8", errors="replace")).encode()
    return b'"data":"' + base64.b64encode(data) + b'","encoding":"base64"'


def chunk_object(prefix: dict[str, object], data: bytes, content_type: str) -> bytes:
    head = json.dumps(prefix, separators=(",", ":"))[:-1].encode()
    return head + b"," + chunk_fields(data, content_type) + b"}"
