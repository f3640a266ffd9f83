"""What both databases can store, checked before a write so that SQLite and PostgreSQL answer
the same bad input alike: 400, not a 500 from one of them and a silent success on the other.

- Text without NUL: PostgreSQL's ``text``, ``varchar`` and ``jsonb`` refuse U+0000 (psycopg
  raises before sending); SQLite stores it, so such a run would not survive a move.
- Text without lone surrogates: a JSON ``"\\ud800"`` decodes to a str that is not Unicode, so
  it has no UTF-8 (both drivers fail to encode it) and ``jsonb`` refuses the escape.
- Text within its column: PostgreSQL raises ``DataError`` past a ``varchar``'s length; SQLite
  stores any length.
- Finite JSON numbers: ``NaN`` and ``Infinity`` are not JSON (RFC 8259), ``jsonb`` and SQLite's
  ``JSON_VALID`` check refuse them, and Python reads ``1e999`` as ``inf``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from streamdash.core.errors import BadRequest

__all__ = ["check_json", "check_text"]

_SHOWN = 40  # characters of a key shown in a path
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def check_text(value: str, *, name: str, max_length: int | None = None, **facts: Any) -> None:
    """Refuse text a column cannot take; ``name`` says which value in the message."""
    found = _UNSTORABLE.search(value)
    if found is not None and found.group() == "\x00":
        raise BadRequest(
            f"{name} contains a NUL character (\\u0000), which cannot be stored; remove it.",
            **facts,
        )
    if found is not None:
        raise BadRequest(
            f"{name} contains a lone surrogate (\\u{ord(found.group()):04x}), which is not "
            "Unicode text; pair it or remove it.",
            **facts,
        )
    if max_length is not None and len(value) > max_length:
        raise BadRequest(
            f"{name} is {len(value)} characters long; the limit is {max_length}.",
            max_length=max_length,
            **facts,
        )


def _path(name: str, keys: tuple[str | int, ...]) -> str:
    parts = [name]
    for key in keys:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            shown = key if len(key) <= _SHOWN else key[:_SHOWN] + "…"
            parts.append(f"[{shown!r}]")
    return "".join(parts)


def check_json(value: Any, *, name: str, **facts: Any) -> None:
    """Refuse a decoded JSON value (``name``) holding NUL or a lone surrogate in a string or
    key, or a number that is not finite. The message names the place, e.g.
    ``metadata['a'][2]``. Iterative, so any depth is walked without recursion; paths are only
    built for the message."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, keys = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                check_text(item, name=_path(name, keys), **facts)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise BadRequest(
                    f"{_path(name, keys)} is not a finite number: JSON has no NaN or Infinity, "
                    "and numbers beyond ±1.8e308 (such as 1e999) cannot be stored.",
                    **facts,
                )
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    check_text(key, name=f"A key in {_path(name, keys)}", **facts)
                stack.append((sub, (*keys, key)))
        elif isinstance(item, list | tuple):
            stack.extend((sub, (*keys, index)) for index, sub in enumerate(item))
