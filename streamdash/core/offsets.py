"""Offsets <-> chunk indices.

The offset of chunk ``i`` is ``0000000000000000_`` + ``i`` as 16 zero-padded digits: the same
shape as the reference server's, so offsets sort as strings and the conformance suite's fixed
offsets parse. ``-1`` means the start, ``now`` the current tail; neither is ever issued.
"""

from __future__ import annotations

import re

from streamdash.core.errors import InvalidOffset

START = "-1"
NOW = "now"
_PREFIX = "0" * 16 + "_"
_OFFSET_RE = re.compile(r"([0-9]{16})_([0-9]{16})")


def offset_for(index: int) -> str:
    return f"{_PREFIX}{index:016d}"


def parse_offset(offset: str, *, tail: int) -> int:
    """Index for an offset; ``tail`` is the stream's next index (what ``now`` means)."""
    if offset == START:
        return 0
    if offset == NOW:
        return tail
    match = _OFFSET_RE.fullmatch(offset)
    if match is None:
        raise InvalidOffset(offset)
    return int(match.group(2))
