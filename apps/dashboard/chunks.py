"""How one chunk is shown: a one-line preview, its text delta, pretty JSON or a hex dump.

Chunk bytes are untrusted. Everything here returns plain ``str``; templates escape it. Nothing
here marks anything safe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PREVIEW_CHARS = 160
# The inspect view shows at most this much of a chunk unless asked for all of it.
DISPLAY_BYTES = 256 * 1024
HEX_BYTES = 64 * 1024
# Keys whose string value is the "text" of a JSON chunk (LLM deltas and the like).
_TEXT_KEYS = ("delta", "text", "content", "token")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def preview(data: bytes, kind: str, limit: int = PREVIEW_CHARS) -> str:
    """One line, at most ``limit`` characters (control characters shown as spaces)."""
    if kind == "bytes" and not _looks_textual(data[:512]):
        head = data[: limit // 3]
        return " ".join(f"{b:02x}" for b in head) + (" …" if len(data) > len(head) else "")
    text = _decode(data[: limit * 4])
    line = " ".join(text.split())
    if len(line) > limit or len(data) > limit * 4:
        return line[: limit - 1] + "…"
    return line


def _looks_textual(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\n\r\t" for c in text)


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            item = value.get(key)
            if isinstance(item, str):
                return item
            if isinstance(item, dict):  # {"delta": {"text": "..."}} (Anthropic-style)
                inner = _text_of(item)
                if inner is not None:
                    return inner
    return None


def text_delta(data: bytes, kind: str) -> str | None:
    """The text a chunk adds to the joined text view, or None for non-text chunks."""
    if kind == "text":
        return _decode(data)
    if kind != "json" or len(data) > DISPLAY_BYTES:
        return None
    try:
        return _text_of(json.loads(data))
    except ValueError:
        return None


@dataclass(frozen=True)
class ChunkBody:
    """What the inspect view shows: ``mode`` is json, text or hex."""

    mode: str
    text: str
    truncated: bool
    shown_bytes: int


def body(data: bytes, kind: str, *, full: bool = False) -> ChunkBody:
    limit = len(data) if full else DISPLAY_BYTES
    if kind == "json" and len(data) <= limit:
        try:
            pretty = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
            return ChunkBody("json", pretty, False, len(data))
        except ValueError:
            pass
    if kind != "bytes" or _looks_textual(data[:4096]):
        shown = data[:limit]
        return ChunkBody("text", _decode(shown), len(shown) < len(data), len(shown))
    limit = len(data) if full else HEX_BYTES
    shown = data[:limit]
    return ChunkBody("hex", hexdump(shown), len(shown) < len(data), len(shown))


def hexdump(data: bytes, width: int = 16) -> str:
    lines = []
    for offset in range(0, len(data), width):
        row = data[offset : offset + width]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}  {hexes:<{width * 3 - 1}}  {text}")
    return "\n".join(lines)
