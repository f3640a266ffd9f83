"""Idempotent producers: the (id, epoch, seq) rules of the Durable Streams protocol.

A duplicate (same epoch, seq already seen) succeeds again with the original result and stores
nothing; a gap is a 409 naming the expected seq; a stale epoch is a 403 naming the current one;
a new epoch must start at seq 0. Pure rules: the caller reads and saves the state.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.streams.rows import ProducerState
from streamdash.core.errors import BadRequest, ProducerSeqGap, StaleProducerEpoch


@dataclass(frozen=True)
class ProducerClaim:
    """The idempotent-producer headers of one request."""

    producer_id: str
    epoch: int
    seq: int


def _gap(expected: int, claim: ProducerClaim, message: str) -> ProducerSeqGap:
    return ProducerSeqGap(
        message,
        headers={"Producer-Expected-Seq": str(expected), "Producer-Received-Seq": str(claim.seq)},
        expected_seq=expected,
        received_seq=claim.seq,
    )


def is_duplicate(state: ProducerState | None, claim: ProducerClaim) -> bool:
    """True for a retry of a request already stored; raises for a gap or a stale epoch."""
    if state is None:
        if claim.seq != 0:
            raise _gap(
                0,
                claim,
                f"Producer {claim.producer_id!r} is new to this stream: its first seq must be 0, "
                f"got {claim.seq}.",
            )
        return False
    if claim.epoch < state.epoch:
        raise StaleProducerEpoch(
            f"Producer epoch {claim.epoch} is stale; the current epoch is {state.epoch}.",
            headers={"Producer-Epoch": str(state.epoch)},
            current_epoch=state.epoch,
        )
    if claim.epoch > state.epoch:
        if claim.seq != 0:
            raise BadRequest(
                f"A new producer epoch must start at Producer-Seq 0, got {claim.seq}.",
                expected_seq=0,
                received_seq=claim.seq,
            )
        return False
    if claim.seq <= state.last_seq:
        return True
    if claim.seq != state.last_seq + 1:
        expected = state.last_seq + 1
        raise _gap(
            expected,
            claim,
            f"Producer seq {claim.seq} skips ahead; the next expected seq is {expected}.",
        )
    return False
