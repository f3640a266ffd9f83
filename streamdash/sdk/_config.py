"""Settings: explicit arguments win, then ``configure(...)``, then the environment
(``STREAMDASH_URL``, ``STREAMDASH_API_KEY``). Read when a client is built, never at import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from streamdash.sdk._exceptions import ConfigurationError
from streamdash.sdk._retry import ReconnectPolicy, RetryPolicy

__all__ = ["DEFAULT_URL", "Settings", "configure", "current_settings"]

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = 30.0  # seconds for one request (connect, write, read)
    live_read_timeout: float = 45.0  # seconds of silence before a live read reconnects
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)  # live reads

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"STREAMDASH_URL must start with http:// or https://, got {self.url!r}."
            )


_explicit: dict[str, object] = {}
_generation = 0


def configure(
    *,
    url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    reconnect: ReconnectPolicy | None = None,
) -> None:
    """Set process-wide defaults (over the environment). Clients built later use them."""
    global _generation
    for name, value in (("url", url), ("api_key", api_key), ("timeout", timeout)):
        if value is not None:
            _explicit[name] = value
    if retry is not None:
        _explicit["retry"] = retry
    if reconnect is not None:
        _explicit["reconnect"] = reconnect
    _generation += 1


def generation() -> int:
    """Changes whenever ``configure`` is called (cached default clients are rebuilt)."""
    return _generation


def current_settings() -> Settings:
    base = Settings(
        url=os.environ.get("STREAMDASH_URL", DEFAULT_URL).rstrip("/"),
        api_key=os.environ.get("STREAMDASH_API_KEY") or None,
    )
    return replace(base, **_explicit)  # type: ignore[arg-type]
