"""The idempotent producer, I/O-free: numbers batches and reads the server's answers.

Every batch goes out with ``Producer-Id``/``Producer-Epoch``/``Producer-Seq``; a retry of the
same batch reuses the same numbers, so the server stores it exactly once (a duplicate answers
204). A 409 gap means the server's producer state differs from ours (e.g. the stream was created
again): we adopt the expected sequence number and send the batch again.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from streamdash.sdk._core import JSON_TYPE, Request, stream_path
from streamdash.sdk._exceptions import ProducerSeqGapError

__all__ = ["Batch", "ProducerState", "new_producer_id"]

_MAX_RESYNCS = 3


def new_producer_id() -> str:
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Batch:
    chunks: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks)

    def body(self) -> bytes:
        # One JSON value per chunk; the server flattens the array exactly one level.
        return b"[" + b",".join(self.chunks) + b"]"


class ProducerState:
    def __init__(
        self, run_id: str, key: str, *, producer_id: str | None = None, path: str | None = None
    ) -> None:
        self.path: str = path or stream_path(run_id, key)  # an input's own URL, for one
        self.key: str = key
        self.producer_id: str = producer_id or new_producer_id()
        self.epoch: int = 0
        self.seq: int = 0
        self.acknowledged: int = 0  # chunks the server has confirmed, in order
        self._resyncs = 0

    def create_request(self) -> Request:
        return Request("PUT", self.path, headers={"Content-Type": JSON_TYPE})

    def append_request(self, batch: Batch) -> Request:
        return Request(
            "POST",
            self.path,
            headers={
                "Content-Type": JSON_TYPE,
                "Producer-Id": self.producer_id,
                "Producer-Epoch": str(self.epoch),
                "Producer-Seq": str(self.seq),
            },
            content=batch.body(),
        )

    def close_request(self) -> Request:
        return Request("POST", self.path, headers={"Stream-Closed": "true"})

    def acknowledged_batch(self, batch: Batch) -> None:
        """The server stored the batch (200), or had already stored it (204)."""
        self.seq += 1
        self.acknowledged += len(batch.chunks)
        self._resyncs = 0

    def resync(self, error: ProducerSeqGapError) -> None:
        """Adopt the server's expected seq, or re-raise when that cannot help."""
        self._resyncs += 1
        if self._resyncs > _MAX_RESYNCS or error.expected_seq == self.seq:
            raise error
        self.seq = error.expected_seq
