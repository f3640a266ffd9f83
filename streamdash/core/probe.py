"""How ``manage.py serve`` asks one worker whether it is up: ``/healthz`` and ``/readyz`` over
a Unix socket of that worker's own.

The workers share one listening TCP socket and the kernel picks which accepts a connection, so
a probe sent to the public port could be answered by any of them. Each worker therefore also
listens on ``worker-<n>.sock`` in a private directory (mode 0700) that the supervisor made;
the supervisor sends its probes there.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = ["Answer", "WorkerProbe"]

Answer = tuple[int, dict[str, object]]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class WorkerProbe:
    """The workers' private sockets; ``get(n, "/healthz")`` asks worker ``n``."""

    def __init__(self, timeout: float = 1.0) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="streamdash-serve-"))
        self.timeout = timeout

    def socket(self, number: int) -> str:
        return str(self.folder / f"worker-{number}.sock")

    def clear(self, number: int) -> None:
        """Remove what a dead worker left behind (its socket and Twisted's lock beside it)."""
        for leftover in (self.socket(number), self.socket(number) + ".lock"):
            with contextlib.suppress(FileNotFoundError):
                Path(leftover).unlink()

    def get(self, number: int, path: str) -> Answer | None:
        """The status and JSON body of ``GET path`` on worker ``number``; None when it does not
        answer within the timeout (not listening yet, or stuck)."""
        connection = _UnixConnection(self.socket(number), self.timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        return response.status, parsed if isinstance(parsed, dict) else {}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
