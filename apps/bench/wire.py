"""The client side of an SSE read, without an HTTP library: a request line, the response head,
HTTP/1.1 chunked transfer coding and ``text/event-stream`` events, each decoded
incrementally from whatever bytes arrived.

Benchmarks hold hundreds of readers in one client process on a 2-core machine shared with the
server; a full HTTP client per reader would cost more CPU than the server it measures. These
decoders do the least a correct reader must: find frame boundaries and hand over the bytes.
"""

from __future__ import annotations

from urllib.parse import urlencode


def get_request(host: str, path: str, query: dict[str, str], headers: dict[str, str]) -> bytes:
    lines = [f"GET {path}?{urlencode(query)} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseHead:
    """Collects the status line and headers; ``feed`` returns the body bytes after them."""

    def __init__(self) -> None:
        self._buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        self._buffer = b""
        status_line, *lines = head.split("\r\n")
        self.status = int(status_line.split()[1])
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.done = True
        return rest

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()


class ChunkedDecoder:
    """HTTP/1.1 chunked transfer coding → the body's bytes. ``finished`` after the last
    (zero-size) chunk."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._left = 0  # > 0: data bytes to come; -1: the CRLF after them; 0: a size line
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while not self.finished:
            if self._left > 0:  # inside a chunk's data
                if not self._buffer:
                    break
                take = min(self._left, len(self._buffer))
                out += self._buffer[:take]
                del self._buffer[:take]
                self._left -= take
                if self._left == 0:
                    self._left = -1
            elif self._left < 0:  # the CRLF after a chunk's data
                if len(self._buffer) < 2:
                    break
                del self._buffer[:2]
                self._left = 0
            else:  # a chunk-size line
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    break
                size = int(bytes(self._buffer[:end]).split(b";")[0], 16)
                del self._buffer[: end + 2]
                self.finished = size == 0
                self._left = size
        return bytes(out)


class SseDecoder:
    """``text/event-stream`` → ``(event, data)`` pairs, ``data`` being the event's ``data:``
    lines joined by newlines. Comments (heartbeats) and ``id:`` lines are dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buffer += data
        events: list[tuple[str, bytes]] = []
        start = 0
        # Resume the search for the blank line where the last one stopped: a 4 MiB event
        # arriving in 64 KiB pieces is scanned once, not once a piece.
        search = max(0, self._scanned - 1)
        while True:
            end = self._buffer.find(b"\n\n", search)
            if end < 0:
                break
            event = _event(bytes(self._buffer[start:end]))
            if event is not None:
                events.append(event)
            start = search = end + 2
        if start:
            del self._buffer[:start]
        self._scanned = len(self._buffer)
        return events


def _event(block: bytes) -> tuple[str, bytes] | None:
    name = "message"
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line.startswith(b"data: ") else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8")
    if not data:
        return None
    return name, b"\n".join(data)
