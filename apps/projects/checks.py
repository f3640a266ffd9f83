"""System checks for streamdash's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

W001 = Warning(
    "STREAMDASH_PUBLIC_DS is on: anyone who can reach the server may create, write, read and "
    "delete standalone streams under /ds/ without credentials.",
    hint="Turn it off (unset STREAMDASH_PUBLIC_DS) outside conformance runs and local tinkering.",
    id="streamdash.W001",
)
W002 = Warning(
    "STREAMDASH_RATE_LIMIT_PER_SECOND is 0: writes are not rate limited.",
    hint="Set a per-credential write rate, e.g. STREAMDASH_RATE_LIMIT_PER_SECOND=100.",
    id="streamdash.W002",
)


@register(Tags.security, deploy=True)
def check_streamdash_deploy(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    warnings = []
    if settings.STREAMDASH_PUBLIC_DS:
        warnings.append(W001)
    if float(settings.STREAMDASH_RATE_LIMIT_PER_SECOND) <= 0:
        warnings.append(W002)
    return warnings
