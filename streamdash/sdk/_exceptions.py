"""Every error the SDK raises. The whole tree, in one place::

StreamdashError
├── ConfigurationError          no server URL, or a bad setting
├── APIConnectionError          the server could not be reached, or the connection dropped,
│   └── APITimeoutError         … or timed out (raised after the retries ran out)
├── APIError                    the server answered 4xx/5xx: .status, .code, .facts
│   ├── BadRequestError         400 (bad input; never retried)
│   ├── AuthenticationError     401
│   ├── PermissionDeniedError   403
│   │   └── StaleEpochError     403 stale_producer_epoch: another writer took over
│   ├── NotFoundError           404
│   ├── ConflictError           409
│   │   ├── StreamClosedError   409 stream_closed
│   │   ├── RunFinishedError    409 run_finished
│   │   └── ProducerSeqGapError 409 producer_seq_gap (.expected_seq)
│   ├── GoneError               410: retention removed the position (.earliest_index)
│   ├── PayloadTooLargeError    413
│   ├── RateLimitError          429 (retried, honouring Retry-After)
│   └── InternalServerError     5xx (retried)
├── DeliveryError               a writer gave up: .acknowledged chunks are stored, the rest not
├── ChunkValidationError        a chunk does not match the stream's chunk type
└── PipeStreamError             pipe.stream was iterated after chunks had gone by (no history)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChunkValidationError",
    "ConfigurationError",
    "ConflictError",
    "DeliveryError",
    "GoneError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PipeStreamError",
    "ProducerSeqGapError",
    "RateLimitError",
    "RunFinishedError",
    "StaleEpochError",
    "StreamClosedError",
    "StreamdashError",
    "error_for",
]


class StreamdashError(Exception):
    """Base of every SDK error."""


class ConfigurationError(StreamdashError):
    pass


class APIConnectionError(StreamdashError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class APIError(StreamdashError):
    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "error",
        facts: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.message = message
        self.status = status
        self.code = code
        self.facts: dict[str, Any] = dict(facts or {})
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}


class BadRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class StaleEpochError(PermissionDeniedError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class StreamClosedError(ConflictError):
    pass


class RunFinishedError(ConflictError):
    pass


class ProducerSeqGapError(ConflictError):
    @property
    def expected_seq(self) -> int:
        value = self.facts.get("expected_seq", self.headers.get("producer-expected-seq", 0))
        return int(value)


class GoneError(APIError):
    @property
    def earliest_index(self) -> int | None:
        value = self.facts.get("earliest_index")
        return int(value) if value is not None else None


class PayloadTooLargeError(APIError):
    pass


class RateLimitError(APIError):
    pass


class InternalServerError(APIError):
    pass


class DeliveryError(StreamdashError):
    """A writer could not deliver within its time bound. ``acknowledged`` chunks are durably
    stored (in order, each once); the chunks after them were not confirmed."""

    def __init__(self, message: str, *, acknowledged: int, submitted: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.submitted = submitted


class ChunkValidationError(StreamdashError):
    def __init__(self, message: str, *, stream: str, index: int | None = None) -> None:
        super().__init__(message)
        self.stream = stream
        self.index = index


class PipeStreamError(StreamdashError):
    """A pipe keeps no history: its local ``stream`` gets the chunks piped after it started."""


_BY_CODE: dict[str, type[APIError]] = {
    "stale_producer_epoch": StaleEpochError,
    "stream_closed": StreamClosedError,
    "run_finished": RunFinishedError,
    "producer_seq_gap": ProducerSeqGapError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def error_for(
    status: int, code: str, message: str, facts: Mapping[str, Any], headers: Mapping[str, str]
) -> APIError:
    """The exception for one error answer: by its code first, then by its status."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIError
    return cls(message, status=status, code=code, facts=facts, headers=headers)
