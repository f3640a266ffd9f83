"""A dependency that may go away (the channel layer, Redis for the shared limits): one warning
when it goes and one when it is back, instead of one per call that fails meanwhile."""

from __future__ import annotations

import logging
import time


class Outage:
    """``gone`` is a log format for (what failed, the error), ``back`` one for the seconds the
    dependency was away."""

    def __init__(self, logger: logging.Logger, *, gone: str, back: str) -> None:
        self.logger = logger
        self.gone = gone
        self.back = back
        self.down_since: float | None = None

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, what: str, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.logger.warning(self.gone, what, exc or type(exc).__name__)

    def ok(self) -> None:
        if self.down_since is not None:
            self.logger.warning(self.back, time.monotonic() - self.down_since)
            self.down_since = None
