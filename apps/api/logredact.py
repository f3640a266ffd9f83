"""Secrets never reach a log: ``?token=…`` (and ``access_token``, ``api_key``, ``password``),
``Authorization`` values, bearer credentials, API keys (``sd_sk_…``) and anything shaped like a
JWT are replaced by ``[redacted]``.

Two places write request lines: the logging module (Django, Channels, Daphne's own errors
and ``manage.py runserver``'s access lines), covered by ``RedactSecretsFilter`` on every
handler in ``settings.LOGGING``; and Daphne's CLI access log (``daphne … app``), which writes
``METHOD /path?query`` straight to a stream, not through logging. ``redact_daphne_access_log``
wraps that writer once, from ``streamdash/asgi.py`` (imported by Daphne before its server and
access log start), so the documented ``daphne streamdash.asgi:application`` is covered too.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["RedactSecretsFilter", "redact", "redact_daphne_access_log"]

REDACTED = "[redacted]"
_SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "password"})
_PARAM = re.compile(r"([?&;])([^=&;\s\"'#?]+)=([^&;\s\"'#]*)")


def _redact_param(match: re.Match[str]) -> str:
    # Compare the name as the server will read it: ``%74oken`` is ``token`` to parse_qs.
    if unquote_plus(match.group(2)).strip().lower() in _SECRET_PARAMS:
        return f"{match.group(1)}{match.group(2)}={REDACTED}"
    return match.group(0)


_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"((?:authorization|http_authorization)[\"']?\s*[:=]\s*[\"']?)[^\"'\n]*", re.I),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(\bbearer\s+)[^\s\"',;]+", re.I), r"\1" + REDACTED),
    (re.compile(r"sd_sk_[A-Za-z0-9_-]+"), "sd_sk_" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
)


def _plain(text: str) -> bool:
    """True when no pattern above can match: each needs one of the strings searched below, in
    lower case (wider than the case-sensitive patterns). ASCII only: with ``re.I`` a pattern's
    letter also matches characters whose lower case is not that letter (``İ`` for ``i``).
    Most request lines of the access log are plain, and this is one ``lower`` and five
    substring searches instead of five regular expression passes.
    ``POST /api/v1/runs/<id>/streams/bench-0``, best of 15 on this machine: 3.9 -> 0.3 us."""
    if not text.isascii():
        return False
    low = text.lower()
    return not (
        "=" in low or "authorization" in low or "bearer" in low or "sd_sk_" in low or "eyj" in low
    )


def redact(text: str) -> str:
    if _plain(text):
        return text
    text = _PARAM.sub(_redact_param, text)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites the record's message (and formatted traceback) with secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the caller's bug; log it as is
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_daphne_access_log() -> None:
    """Make Daphne's CLI access log redact request lines (idempotent)."""
    try:
        from daphne import access
    except ImportError:  # another ASGI server: its logs go through logging
        return
    original = access.AccessLogGenerator.write_entry
    if getattr(original, "redacts_secrets", False):
        return

    def write_entry(self: Any, host: Any, date: Any, request: str, *args: Any, **kw: Any) -> Any:
        return original(self, host, date, redact(request), *args, **kw)

    write_entry.redacts_secrets = True  # type: ignore[attr-defined]  # a marker on a function object
    access.AccessLogGenerator.write_entry = write_entry
