"""A loopback HTTP server that accepts every stream write and keeps only a count, for measuring
the SDK's own memory over a pipe larger than the real server's stream limit (300 MiB) and
faster than a database can store it. Run in a subprocess (``python -m tests.sdk.sink``), so
that its buffers are not the measured process's: it prints its port, then serves until
stdin closes. ``GET /count`` answers the batches and bytes received so far."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counts:
    batches = 0
    bytes = 0
    lock = threading.Lock()


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's client expects
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def _drain(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_PUT(self) -> None:  # http.server's naming
        self._drain()
        self._answer(201)

    def do_POST(self) -> None:
        body = self._drain()
        if body:  # a JSON array of chunks; counted, not parsed
            with Counts.lock:
                Counts.batches += 1
                Counts.bytes += len(body)
        self._answer(204)

    def do_GET(self) -> None:
        self._answer(200, json.dumps({"batches": Counts.batches, "bytes": Counts.bytes}).encode())

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: a GiB is a thousand requests


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    server.shutdown()


if __name__ == "__main__":
    main()
