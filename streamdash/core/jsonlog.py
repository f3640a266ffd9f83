"""``STREAMDASH_LOG_FORMAT=json``: one JSON object a line, for every logger.

Each line has ``timestamp`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``,
``message``, ``request_id`` (the request being handled when the line was written, or null) and,
when there is one, ``exception`` (the formatted traceback); fields a caller passed with
``extra=`` (the access log's ``method``, ``path``, ``status``…) follow.

The standard library's ``logging.Formatter`` and ``json`` do it in a few lines, so no library
is added for it (python-json-logger would bring its own configuration vocabulary for what is
one ``json.dumps`` of fixed fields). The redaction filter on every handler
(``apps.api.logredact``) has cleaned the message and the traceback before a formatter sees
them; the ``extra=`` fields are cleaned here by the ``redact`` function the settings pass in
(Django's ``django.request`` lines carry the request, whose text includes the query string).
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from collections.abc import Callable
from typing import Any

from streamdash.core import requestid

__all__ = ["JsonFormatter", "configure"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _unchanged(text: str) -> str:
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Callable[[str], str] = _unchanged) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": requestid.current(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = self._field(value)
        return json.dumps(line, default=str)

    def _field(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(value if isinstance(value, str) else str(value))

    @staticmethod
    def _timestamp(record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def configure(config: dict[str, Any]) -> None:
    """Django's ``LOGGING_CONFIG``: ``dictConfig``, and with a JSON handler ``warnings.warn()``
    sent through logging too (Python writes warnings to stderr itself otherwise: a line that
    is not JSON). Django calls it during setup, before the apps load and warn."""
    logging.config.dictConfig(config)
    handlers = config.get("handlers", {}).values()
    logging.captureWarnings(any(handler.get("formatter") == "json" for handler in handlers))
