"""SDK tests run against the session's real daphne (``server``/``server_key``): over HTTP only."""

from __future__ import annotations

import os
import uuid

import pytest

from streamdash.sdk import ReconnectPolicy, RetryPolicy, configure
from tests.server import Server

# Retries fast enough for a test suite, still exponential, capped and bounded.
FAST_RETRY = RetryPolicy(max_attempts=30, initial_delay=0.01, max_delay=0.2, deadline=20.0)
FAST_RECONNECT = ReconnectPolicy(initial_delay=0.01, max_delay=0.2, give_up_after=20.0)


@pytest.fixture(scope="session")
def sdk_server(server: Server, server_key: str) -> Server:
    """The server, with the SDK configured for it (as STREAMDASH_URL/STREAMDASH_API_KEY do)."""
    configure(url=server.url, api_key=server_key, retry=FAST_RETRY, reconnect=FAST_RECONNECT)
    return server


@pytest.fixture
def sdk_env(sdk_server: Server, server_key: str) -> dict[str, str]:
    """Environment for a subprocess that uses the SDK against the test server."""
    return {
        **os.environ,
        "STREAMDASH_URL": sdk_server.url,
        "STREAMDASH_API_KEY": server_key,
        "PYTHONPATH": str(os.getcwd()),
    }


@pytest.fixture
def stream_id() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"
