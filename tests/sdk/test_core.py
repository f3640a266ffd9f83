"""The I/O-free core: SSE decoding, retry timing, error mapping, read positions, producer
numbering; and the client's retry loop over an injected transport (no server needed)."""

from __future__ import annotations

import json

import httpx
import pytest

from streamdash.sdk import (
    Client,
    GoneError,
    ProducerSeqGapError,
    RateLimitError,
    RetryPolicy,
    StreamClosedError,
)
from streamdash.sdk._core import ReadPlan, Request, error_from, offset_for
from streamdash.sdk._producer import Batch, ProducerState
from streamdash.sdk._retry import (
    Attempts,
    ReconnectPolicy,
    Reconnects,
    RetryInfo,
    retry_after_seconds,
)
from streamdash.sdk._sse import ServerSentEvent, SSEDecoder


def _events(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [e for line in text.split("\n") if (e := decoder.feed(line)) is not None]


def test_sse_decoder_events_ids_and_cut_frames() -> None:
    text = "event: data\ndata:[1,\ndata:2]\n\n: keep-alive\n\nevent: control\ndata:{}\nid:x1\n\n"
    events = _events(text + "event: data\ndata:[3]")  # the last frame was cut off
    assert events == [
        ServerSentEvent("data", "[1,\n2]", None),
        ServerSentEvent("control", "{}", "x1"),
    ]


def test_retry_delay_is_capped_exponential_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.25)
    for attempt, base in ((1, 0.1), (2, 0.2), (3, 0.4), (10, 1.0)):
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(base * 0.75 <= d <= base for d in delays)
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert retry_after_seconds({"retry-after": "2"}) == 2.0


def test_attempts_are_bounded_in_count_and_time_and_reset_on_progress() -> None:
    now = [0.0]
    attempts = Attempts(RetryPolicy(max_attempts=3, deadline=10.0), clock=lambda: now[0])
    error = httpx.ConnectError("down")
    attempts.after_failure(error)
    attempts.after_failure(error)
    attempts.reset()
    attempts.after_failure(error)
    now[0] = 11.0
    with pytest.raises(Exception, match="connection to the server failed"):
        attempts.after_failure(error)
    with pytest.raises(StreamClosedError):  # not retryable: raised at once
        Attempts(RetryPolicy()).after_failure(error_from(409, {}, _body("stream_closed")))


def _body(code: str, **facts: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": "m", **facts}}).encode()


def test_reconnects_wait_for_a_stream_retry_the_network_and_stop_at_what_is_final() -> None:
    now = [0.0]
    retries: list[RetryInfo] = []
    policy = ReconnectPolicy(
        initial_delay=0.25, max_delay=10, give_up_after=300, wait_for_stream=600
    )
    reconnects = Reconnects(policy, on_retry=retries.append, clock=lambda: now[0])
    waiting = error_from(404, {}, _body("stream_not_found", run_status="executing"))
    # Not created yet: asked again soon (the server holds each ask), up to wait_for_stream.
    assert 0 < reconnects.after_failure(waiting) <= 1.0
    now[0] = 599.0
    reconnects.after_failure(waiting)
    now[0] = 601.0
    with pytest.raises(type(waiting)):
        reconnects.after_failure(waiting)
    # Data resets everything; the network is retried with growing delays until give_up_after.
    reconnects.connected()
    down = httpx.ConnectError("refused")
    delays = [reconnects.after_failure(down) for _ in range(8)]
    assert 0.125 <= delays[0] <= 0.25
    assert 5.0 <= delays[-1] <= 10.0
    assert [r.attempt for r in retries] == [1, 2, 1, 2, 3, 4, 5, 6, 7, 8]
    assert retries[-1].error is down
    assert retries[-1].delay == delays[-1]
    assert reconnects.after_failure(down, had_data=True) == 0.0  # a dropped line: at once
    now[0] = 902.0
    with pytest.raises(Exception, match="connection to the server failed"):
        reconnects.after_failure(down)
    # Final answers raise at once, never retried.
    finished = error_from(404, {}, _body("stream_not_found", run_status="completed"))
    for final in (
        finished,
        error_from(401, {}, _body("unauthorized")),
        error_from(410, {}, _body("gone")),
    ):
        with pytest.raises(type(final)):
            Reconnects(policy).after_failure(final)
    # "Slow down" waits at least as long as the server asked.
    slow = error_from(429, {"Retry-After": "7"}, _body("rate_limited"))
    assert Reconnects(policy).after_failure(slow) >= 7.0


def test_error_mapping_by_code_then_status() -> None:
    gap = error_from(409, {"Producer-Expected-Seq": "4"}, _body("producer_seq_gap"))
    assert isinstance(gap, ProducerSeqGapError)
    assert gap.expected_seq == 4
    gone = error_from(410, {}, _body("gone", earliest_index=7))
    assert isinstance(gone, GoneError)
    assert gone.earliest_index == 7
    assert error_from(502, {}, b"<html>bad gateway</html>").status == 502


def test_read_plan_counts_positions_and_ends_at_close() -> None:
    plan = ReadPlan(run_id="r", key="k", start_index=5, timeout=None, decode=lambda v, i: (i, v))
    request = plan.request()
    assert request is not None
    assert request.params["offset"] == offset_for(5)
    assert plan.on_event(ServerSentEvent("data", '["a","b"]', None)) == [(5, "a"), (6, "b")]
    # Cut before the control frame: the next request resumes at exactly the next chunk.
    assert plan.request() == Request(
        "GET", "/api/v1/runs/r/streams/k", params={"live": "sse", "offset": offset_for(7)}
    )
    plan.on_event(ServerSentEvent("control", '{"streamClosed":true}', None))
    assert plan.done


def test_producer_numbers_batches_and_resynchronises_on_a_gap() -> None:
    state = ProducerState("r", "k", producer_id="p")
    batch = Batch((b"1", b"[2]"))
    request = state.append_request(batch)
    assert request.content == b"[1,[2]]"
    assert request.headers["Producer-Seq"] == "0"
    assert state.append_request(batch) == request  # a retry is byte-identical
    state.acknowledged_batch(batch)
    assert (state.seq, state.acknowledged) == (1, 2)
    state.resync(ProducerSeqGapError("gap", status=409, facts={"expected_seq": 0}))
    assert state.seq == 0


def test_client_retries_429_honouring_retry_after_then_succeeds() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "0"}, content=_body("rate_limited"))
        return httpx.Response(200, json={"ok": True})

    with Client(url="http://127.0.0.1:9", transport=httpx.MockTransport(handler)) as client:
        assert client.json(Request("GET", "/api/v1/runs")) == {"ok": True}
    assert len(calls) == 3

    def always(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "0"}, content=_body("rate_limited"))

    policy = RetryPolicy(max_attempts=2)
    with (
        Client(url="http://127.0.0.1:9", transport=httpx.MockTransport(always), retry=policy) as c,
        pytest.raises(RateLimitError),
    ):
        c.request(Request("GET", "/api/v1/runs"))
