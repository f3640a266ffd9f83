"""The benchmark client's decoders: whatever way the bytes are cut, the same events come out
(the fan-out benchmark's "every reader got every chunk" rests on them)."""

from __future__ import annotations

import random

import pytest

from apps.bench.big import chunk_sizes
from apps.bench.wire import ChunkedDecoder, ResponseHead, SseDecoder

EVENTS = [
    ("data", b'[{"n":%d}]' % n) if n % 2 == 0 else ("control", b'{"streamNextOffset":"%d"}' % n)
    for n in range(200)
]


def _sse_body() -> bytes:
    frames = [b"event: %s\ndata:%s\nid:x\n\n" % (e.encode(), d) for e, d in EVENTS]
    frames.insert(7, b": keep-alive\n\n")
    return b"".join(frames)


def _chunked(body: bytes, rng: random.Random) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(body):
        piece = body[pos : pos + rng.randint(1, 300)]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
        pos += len(piece)
    return bytes(out + b"0\r\n\r\n")


@pytest.mark.parametrize("seed", range(5))
def test_wire_decoders_any_cut(seed: int) -> None:
    rng = random.Random(seed)
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(_sse_body(), rng)
    head, body, events = ResponseHead(), ChunkedDecoder(), SseDecoder()
    got: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(raw):
        size = rng.randint(1, 200)
        piece, pos = raw[pos : pos + size], pos + size
        if not head.done:
            piece = head.feed(piece)
            if not head.done:
                continue
        got += events.feed(body.feed(piece))
    assert (head.status, head.chunked, body.finished) == (200, True, True)
    assert got == EVENTS


def test_wire_multiline_data_joined() -> None:
    assert SseDecoder().feed(b"event: data\ndata: a\ndata:b\n\n") == [("data", b"a\nb")]


def test_big_chunk_sizes_sum_to_total() -> None:
    assert chunk_sizes(1_200_000, 500_000) == [500_000, 500_000, 200_000]
