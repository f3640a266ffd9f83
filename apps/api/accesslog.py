"""Daphne's access log as JSON lines (``STREAMDASH_LOG_FORMAT=json``).

Daphne's CLI writes its access log straight to stdout in NCSA form, outside logging. In JSON
mode :func:`log_daphne_access_through_logging` sends each entry to the ``streamdash.access``
logger instead, so it is formatted like every other line: with the request id, and the path
redacted as in plain mode. Daphne records an HTTP response when the application sends its last
body part, from inside that ``send`` call, so the entry is written in the request's context and
carries its id. With daphne's ``-v 0`` (no access log) nothing changes.
"""

from __future__ import annotations

import logging
from typing import Any

from apps.api.logredact import redact

__all__ = ["log_daphne_access_through_logging"]

logger = logging.getLogger("streamdash.access")

# Daphne's (protocol, action) pairs, as its own access log names them.
_WEBSOCKET = {
    "connecting": "WSCONNECTING",
    "rejected": "WSREJECT",
    "connected": "WSCONNECT",
    "disconnected": "WSDISCONNECT",
}


def _entry(self: Any, protocol: str, action: str, details: dict[str, Any]) -> None:
    if protocol == "http" and action == "complete":
        method = str(details["method"])
    elif protocol == "websocket" and action in _WEBSOCKET:
        method = _WEBSOCKET[action]
    else:
        return
    path = redact(str(details["path"]))
    status = details.get("status")
    fields: dict[str, Any] = {"method": method, "path": path, "client": details.get("client")}
    if status is not None:
        fields.update(status=status, size=details.get("size"))
        fields["duration_ms"] = round(float(details.get("time_taken") or 0) * 1000, 1)
    logger.info("%s %s %s", method, path, status or "-", extra=fields)


def log_daphne_access_through_logging() -> None:
    """Route Daphne's access log through logging (idempotent; see the module)."""
    try:
        from daphne import access
    except ImportError:  # another ASGI server: its logs go through logging
        return
    access.AccessLogGenerator.__call__ = _entry
