"""The streamdash Python SDK: typed, resumable streams for runs. Pure Python (httpx and
pydantic), no Django. Configure with ``STREAMDASH_URL`` and ``STREAMDASH_API_KEY``, or
``configure(...)``, or an explicit ``Client``/``AsyncClient``.

    from streamdash.sdk import streams, task, runs

    progress = streams.define("progress", chunk=Progress)

    @task("generate")
    async def generate(payload: Prompt) -> dict[str, bool]:
        await progress.append({"step": "start", "percent": 0})
        await ai.pipe(llm_stream()).wait_until_complete()
        return {"ok": True}
"""

from __future__ import annotations

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._config import Settings, configure
from streamdash.sdk._context import RunContext, current_run
from streamdash.sdk._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChunkValidationError,
    ConfigurationError,
    ConflictError,
    DeliveryError,
    GoneError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PipeStreamError,
    ProducerSeqGapError,
    RateLimitError,
    RunFinishedError,
    StaleEpochError,
    StreamClosedError,
    StreamdashError,
)
from streamdash.sdk._inputs import InputStream, InputSubscription
from streamdash.sdk._pipe import Pipe
from streamdash.sdk._retry import ReconnectPolicy, RetryInfo, RetryPolicy
from streamdash.sdk._runs import Run, RunPart, StreamPart, Subscription, auth, metadata, runs
from streamdash.sdk._streams import StreamDefinition, streams
from streamdash.sdk._tasks import RunHandle, RunResult, Task, task
from streamdash.sdk._worker import Worker
from streamdash.sdk._writer import AsyncStreamWriter, StreamWriter, WriterOptions

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncStreamWriter",
    "AuthenticationError",
    "BadRequestError",
    "ChunkValidationError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "DeliveryError",
    "GoneError",
    "InputStream",
    "InputSubscription",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Pipe",
    "PipeStreamError",
    "ProducerSeqGapError",
    "RateLimitError",
    "ReconnectPolicy",
    "RetryInfo",
    "RetryPolicy",
    "Run",
    "RunContext",
    "RunFinishedError",
    "RunHandle",
    "RunPart",
    "RunResult",
    "Settings",
    "StaleEpochError",
    "StreamClosedError",
    "StreamDefinition",
    "StreamPart",
    "StreamWriter",
    "StreamdashError",
    "Subscription",
    "Task",
    "Worker",
    "WriterOptions",
    "auth",
    "configure",
    "current_run",
    "metadata",
    "runs",
    "streams",
    "task",
]
