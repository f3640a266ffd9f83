"""How streamdash is served: one daphne command line for the demo, benchmarks, tests and
``manage.py serve``.

It runs daphne through ``streamdash.core.flowserver`` (daphne with flow control on streamed
responses: a reader that stops reading is paused, then cut off).

Daphne's WebSocket limits are set explicitly (its defaults are 1 MiB): readers send nothing and
the dashboard sends small control messages, so 64 KiB is plenty and bounds a hostile peer.
In production run ``python manage.py serve`` (N such processes on one socket, each started with
:func:`daphne_fd_command`), or one by hand with the same flags: ``python -m
streamdash.core.flowserver --websocket-max-message-size 65536 --websocket-max-frame-size 65536
-b 0.0.0.0 -p 8000 streamdash.asgi:application``.
"""

from __future__ import annotations

import socket
import sys

WEBSOCKET_LIMIT_BYTES = 65536
APPLICATION = "streamdash.asgi:application"


def _daphne(*bind: str, application: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamdash.core.flowserver",
        "--websocket-max-message-size",
        str(WEBSOCKET_LIMIT_BYTES),
        "--websocket-max-frame-size",
        str(WEBSOCKET_LIMIT_BYTES),
        *bind,
        application,
    ]


def daphne_command(host: str, port: int, application: str = APPLICATION) -> list[str]:
    """Daphne binding ``host:port`` itself (one process)."""
    return _daphne("-b", host, "-p", str(port), application=application)


def daphne_fd_command(
    fd: int,
    family: socket.AddressFamily,
    application: str = APPLICATION,
    *,
    probe_socket: str | None = None,
) -> list[str]:
    """Daphne serving a listening socket it inherited as file descriptor ``fd`` and, with
    ``probe_socket``, a Unix socket of its own too (``manage.py serve`` asks each worker's
    ``/healthz`` there: ``streamdash/core/probe.py``).

    Daphne's ``--fd`` assumes IPv4 (Twisted's ``fd:`` endpoint defaults to ``domain=INET``), so
    an IPv6 socket is passed as the endpoint string spelled out.
    """
    own = ["-u", probe_socket] if probe_socket else []
    if family == socket.AF_INET6:
        return _daphne("-e", f"fd:fileno={fd}:domain=INET6", *own, application=application)
    return _daphne("--fd", str(fd), *own, application=application)
