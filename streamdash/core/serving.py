"""How streamdash is served: one daphne command line for the demo, benchmarks and tests.

It runs daphne through ``streamdash.core.flowserver`` (daphne with flow control on streamed
responses: a reader that stops reading is paused, then cut off).

Daphne's WebSocket limits are set explicitly (its defaults are 1 MiB): readers send nothing and
the dashboard sends small control messages, so 64 KiB is plenty and bounds a hostile peer.
In production run the same: ``python -m streamdash.core.flowserver
--websocket-max-message-size 65536 --websocket-max-frame-size 65536 -b 0.0.0.0 -p 8000
streamdash.asgi:application`` (or ``manage.py serve``).
"""

from __future__ import annotations

import sys

WEBSOCKET_LIMIT_BYTES = 65536


def daphne_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamdash.core.flowserver",
        "--websocket-max-message-size",
        str(WEBSOCKET_LIMIT_BYTES),
        "--websocket-max-frame-size",
        str(WEBSOCKET_LIMIT_BYTES),
        "-b",
        host,
        "-p",
        str(port),
        "streamdash.asgi:application",
    ]
