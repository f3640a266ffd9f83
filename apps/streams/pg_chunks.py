"""A batch of chunks as one ``bytea[]`` parameter, in PostgreSQL's binary array format.

Both append statements (``pg_oneshot``, ``pg_append``'s checked path) send the batch as one
array and unnest it in the statement. psycopg's generic list dumper finds a dumper for each
element and calls it: 70 µs for 100 chunks of 64 B, the largest Python cost of such an append
after splitting the body. This one packs the array's header and each element's length around
the bytes, with no per-element lookup: 31 µs (both measured on this machine in one sitting).
Registered on the pool's connections (``pg_append._configure``).
"""

from __future__ import annotations

import struct

from psycopg import AsyncConnection
from psycopg.adapt import Dumper
from psycopg.pq import Format

_BYTEA, _BYTEA_ARRAY = 17, 1001
# ndim, has nulls, element type, then the one dimension's length and lower bound.
_HEADER = struct.Struct(">iiIii")
_LENGTH = struct.Struct(">i").pack


class Chunks(list[bytes]):
    """The chunks of one append, sent as one ``bytea[]`` in binary (``%b``)."""


class _ChunksDumper(Dumper):
    format = Format.BINARY
    oid = _BYTEA_ARRAY

    def dump(self, obj: Chunks) -> bytes:
        return _HEADER.pack(1, 0, _BYTEA, len(obj), 1) + b"".join(
            [_LENGTH(len(chunk)) + chunk for chunk in obj]
        )


def register(conn: AsyncConnection[object]) -> None:
    conn.adapters.register_dumper(Chunks, _ChunksDumper)
