"""Domain errors: values with a stable code, an HTTP status and the facts a caller needs.

Services raise these; ``apps.api.errors`` turns them into PROTOCOL.md §4 JSON. Nothing here
knows about HTTP beyond the status number and protocol headers that carry the same facts.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **facts: Any):
        super().__init__(message)
        self.message = message
        self.facts = facts
        self.headers = headers or {}


class BadRequest(DomainError):
    code = "bad_request"


class InvalidOffset(DomainError):
    code = "invalid_offset"

    def __init__(self, offset: str):
        super().__init__(
            f"Offset {offset!r} is not valid: use -1 (start), now (tail), or an offset "
            "returned in Stream-Next-Offset.",
            offset=offset,
        )


class InvalidJson(DomainError):
    code = "invalid_json"


class SchemaViolation(DomainError):
    code = "schema_violation"


class EmptyBody(DomainError):
    code = "empty_body"


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class StreamNotFound(NotFound):
    code = "stream_not_found"


class Conflict(DomainError):
    code = "conflict"
    status = 409


class StreamExists(Conflict):
    code = "stream_exists"


class StreamClosed(Conflict):
    code = "stream_closed"


class ContentTypeMismatch(Conflict):
    code = "content_type_mismatch"


class SeqConflict(Conflict):
    code = "stream_seq_conflict"


class ProducerSeqGap(Conflict):
    code = "producer_seq_gap"


class RunFinished(Conflict):
    code = "run_finished"


class StaleProducerEpoch(Forbidden):
    code = "stale_producer_epoch"


class Gone(DomainError):
    code = "gone"
    status = 410


class StreamDeleted(Gone):
    """The stream was deleted while forks still read from it: its name stays taken."""

    code = "stream_deleted"


class ForkSourceDeleted(Conflict):
    code = "fork_source_deleted"


class MethodNotAllowed(DomainError):
    code = "method_not_allowed"
    status = 405


class TooLarge(DomainError):
    code = "too_large"
    status = 413


class StreamFull(TooLarge):
    code = "stream_full"


class TooManyChunks(TooLarge):
    code = "too_many_chunks"


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    status = 415


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429


class InternalError(DomainError):
    """An unexpected failure, answered in the JSON shape (the traceback goes to the log)."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str = "The server failed; try again.", **facts: Any) -> None:
        super().__init__(message, **facts)


class Unavailable(DomainError):
    """The database (or another dependency) is away for now: retry after ``Retry-After``."""

    code = "unavailable"
    status = 503
