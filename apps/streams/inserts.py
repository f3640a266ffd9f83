"""The batch insert of chunks: one statement per append, whatever the backend.

PostgreSQL gets ``COPY … FROM STDIN (FORMAT BINARY)`` through psycopg 3, the cheapest way in
for a batch of rows; SQLite gets multi-row ``INSERT … VALUES`` statements sized under its
bound-parameter limit. Both run inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from apps.streams.models import Chunk

_TABLE = Chunk._meta.db_table
_COLUMNS = ("stream_id", "index", "data", "producer", "created_at")
# SQLite's default SQLITE_MAX_VARIABLE_NUMBER is 32766; stay well below it.
_SQLITE_ROWS_PER_STATEMENT = 5000


def insert_chunks(
    *, stream_id: int, start: int, chunks: list[bytes], producer: str, now: dt.datetime
) -> None:
    if connection.vendor == "postgresql":
        _copy_postgres(stream_id, start, chunks, producer, now)
    else:
        _insert_values(stream_id, start, chunks, producer, now)


def _copy_postgres(
    stream_id: int, start: int, chunks: list[bytes], producer: str, now: dt.datetime
) -> None:
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(f'COPY "{_TABLE}" ({columns}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.set_types(["int8", "int8", "bytea", "varchar", "timestamptz"])
            for offset, data in enumerate(chunks):
                copy.write_row((stream_id, start + offset, data, producer, now))


def _insert_values(
    stream_id: int, start: int, chunks: list[bytes], producer: str, now: dt.datetime
) -> None:
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for first in range(0, len(chunks), _SQLITE_ROWS_PER_STATEMENT):
            batch = chunks[first : first + _SQLITE_ROWS_PER_STATEMENT]
            rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(batch))
            params: list[int | bytes | str | None] = []
            for offset, data in enumerate(batch, start=start + first):
                params.extend((stream_id, offset, data, producer, stamp))
            cursor.execute(f'INSERT INTO "{_TABLE}" ({columns}) VALUES {rows}', params)
