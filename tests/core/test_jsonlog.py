"""The JSON log formatter: one object a line with the fixed fields, the traceback when there is
one, and ``extra=`` fields cleaned by the redaction it is given."""

from __future__ import annotations

import json
import logging
import sys

from apps.api.logredact import redact
from streamdash.core import requestid
from streamdash.core.jsonlog import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
    record = logging.LogRecord(
        "streamdash.x", logging.ERROR, __file__, 1, "failed %s", ("x",), info
    )
    record.__dict__.update(extra)
    return record


def test_json_log_line_has_the_fields_the_traceback_and_clean_extras() -> None:
    formatter = JsonFormatter(redact=redact)
    record = _record(path="/s?token=eyJa.b.c", status=404, request="<GET '/x?api_key=sd_sk_abc'>")
    line = formatter.format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR"
    assert parsed["logger"] == "streamdash.x"
    assert parsed["message"] == "failed x"
    assert parsed["request_id"] is None
    assert parsed["timestamp"].endswith("Z")
    assert "ValueError: boom" in parsed["exception"]
    assert parsed["status"] == 404
    assert parsed["path"] == "/s?token=[redacted]"
    assert "sd_sk_abc" not in parsed["request"]


def test_json_log_line_carries_the_current_request_id() -> None:
    context = requestid.outside_request()
    context.run(requestid._current.set, "req-9")
    line = context.run(JsonFormatter().format, _record())
    assert json.loads(line)["request_id"] == "req-9"
