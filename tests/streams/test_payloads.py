"""Request bodies → chunks (apps/streams/payloads.py): the limits every append path gets, and
what counts as JSON."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.streams import payloads
from apps.streams.payloads import json_array, read_body, split_body, split_json
from streamdash.core.errors import InvalidJson, TooLarge, TooManyChunks

JSON = "application/json"


def test_split_body_refuses_more_chunks_than_the_limit(settings) -> None:
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 3
    assert split_body(JSON, b"[1,2,3]") == [b"1", b"2", b"3"]
    with pytest.raises(TooManyChunks) as refused:
        split_body(JSON, b"[1,2,3,4]")
    assert refused.value.status == 413
    assert refused.value.code == "too_many_chunks"
    assert refused.value.facts["limit"] == 3
    assert "3 chunks" in refused.value.message


def test_split_body_counts_only_top_level_elements(settings) -> None:
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 1
    assert split_body(JSON, b"[[1,2,3,4]]") == [b"[1,2,3,4]"]
    assert split_body("text/plain", b"1,2,3,4") == [b"1,2,3,4"]


def test_split_body_stops_at_the_limit_instead_of_splitting_everything(settings) -> None:
    """The measured attack: a 2 MB body of ``0,`` is a million chunks. Refused after the
    limit's worth of elements, not after cutting out all of them."""
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 10_000
    body = b"[" + b",".join([b"0"] * 1_000_000) + b"]"
    began = time.perf_counter()
    with pytest.raises(TooManyChunks):
        split_body(JSON, body)
    assert time.perf_counter() - began < 0.5


def test_the_default_limit_is_above_what_the_sdk_batches(settings) -> None:
    from streamdash.sdk._writer import WriterOptions

    assert settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST == 10_000
    assert WriterOptions().max_batch_chunks <= settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST


def test_split_json_for_one_object_has_no_chunk_limit(settings) -> None:
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 1
    assert split_json(b'{"a": [1, 2, 3]}') == [b'{"a": [1, 2, 3]}']


def test_too_many_chunks_is_a_kind_of_too_large() -> None:
    assert issubclass(TooManyChunks, TooLarge)


@pytest.mark.parametrize(
    "body",
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"[1, NaN]",
        b'[{"a": Infinity}]',
        b"[[1, [-Infinity]]]",
        b'{"x": NaN}',
    ],
)
def test_split_json_refuses_nan_and_infinity(body: bytes) -> None:
    """Not JSON (RFC 8259): a reader's ``JSON.parse`` of the stream would fail on them."""
    with pytest.raises(InvalidJson, match="not JSON"):
        split_body(JSON, body)


@pytest.mark.parametrize(
    "value",
    [b"1e400", b"-1e400", b"1E+999", b"0.10", b"1" * 5000, b"-" + b"9" * 5000, b"1." + b"0" * 5000],
)
def test_split_json_keeps_numbers_byte_exact_whatever_their_size(value: bytes) -> None:
    """Valid JSON numbers outside what Python's float or int conversion takes are still JSON:
    the stream stores the writer's bytes, and never converts them."""
    assert split_body(JSON, b"[" + value + b", " + value + b"]") == [value, value]
    assert split_body(JSON, value) == [value]


@pytest.mark.parametrize(
    ("chunks", "body"),
    [([], b"[]"), ([b"1"], b"[1]"), ([b'{"a":[1]}', b'"x"', b"null"], b'[{"a":[1]},"x",null]')],
)
def test_json_array_is_the_chunks_as_one_array(chunks: list[bytes], body: bytes) -> None:
    assert json_array(chunks) == body
    assert read_body("application/json; charset=utf-8", chunks) == body


def test_read_body_of_bytes_is_the_chunks_joined() -> None:
    assert read_body("application/octet-stream", [b"\x00", b"[", b""]) == b"\x00["


_BODIES = [
    b'[{"a": 1}, {"b": [2, 3]}]',
    b" [ 1 ,\t2\n,\r3 ] ",
    b"[1,  2 ,\n 3\t]",
    b'[1e400, 0.10, "x\\"]", "\\ud800", [[]], {}]',
    b"[" + b",".join(b'{"n": %d, "p": "[{x"}' % n for n in range(100)) + b"]",
    b"[" + b"[" * 63 + b"]" * 63 + b"]",  # as deep as the limit
    b"[" + b"[" * 64 + b"]" * 64 + b"]",  # one level deeper
    b'["' + b"[" * 200 + b'", 1]',  # brackets in a string only
    b"[1, 2,]",
    b"[1 2]",
    b"[1, NaN]",
    b"[1, 2] 3",
    b"[1, 2",
    b"[]",
    b"[ ]  x",
    b'[{"a": 1}, {"a": ]',
    b"[" + b"[" * 70 + b"1, 2",
    b"[" + b",".join([b"0"] * 151) + b"]",
]


@pytest.mark.parametrize("body", _BODIES)
def test_split_json_answers_as_its_careful_loop(body: bytes, settings, monkeypatch) -> None:
    """The array fast path gives the same chunks, or the same error, as the loop it skips."""
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 150
    settings.STREAMDASH_MAX_JSON_DEPTH = 64

    def answer() -> object:
        try:
            return split_body(JSON, body)
        except Exception as exc:  # the error itself is the answer compared
            return type(exc), str(exc), getattr(exc, "facts", None)

    fast = answer()
    monkeypatch.setattr(payloads, "_split_array", lambda *args: None)
    assert fast == answer()


_COMPACT_BODIES = [
    b'[{"a":1},{"b":[2,3]}]',
    b'[{"a":1,"a":2}]',  # a duplicate key: orjson keeps one
    b"[1e400,0.10,1E5,-0,1.0,18446744073709551616," + b"1" * 5000 + b"]",
    b'["\\u00e9","\\/","\\ud800","\\ud83d\\ude00","\\n","\\u001f","\xc3\xa9"]',
    b'["\xff"]',
    b"[NaN]",
    b"[" + b"[" * 63 + b"]" * 63 + b"]",
    b"[" + b"[" * 64 + b"]" * 64 + b"]",
    b'["' + b"[" * 200 + b'",1]',
    b"[" + b",".join([b"0"] * 150) + b"]",
    b"[" + b",".join([b"0"] * 151) + b"]",
    b"[" + b",".join(b'{"n":%d,"p":"x, y: z"}' % n for n in range(100)) + b"]",
    b"[]",
    b"[1,2,]",
    b"[1,2]3",
    b"[1,2] ",
    b'[{"a": 1}]',
    b"[true,false,null,-1.5e-7,5e-324]",
]


def _answer(body: bytes) -> object:
    try:
        return split_body(JSON, body)
    except Exception as exc:  # the error itself is the answer compared
        return type(exc), str(exc), getattr(exc, "facts", None)


def _careful_answer(body: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patched:
        patched.setattr(payloads, "_split_compact", lambda *args: None)
        patched.setattr(payloads, "_split_array", lambda *args: None)
        return _answer(body)


@pytest.mark.parametrize("body", _BODIES + _COMPACT_BODIES)
def test_split_json_of_compact_bodies_answers_as_its_careful_loop(
    body: bytes, settings, monkeypatch
) -> None:
    """orjson's split of a compact array gives the same chunks, or leaves the same error, as
    the scanner's loop: every chunk stays the writer's exact bytes."""
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 150
    settings.STREAMDASH_MAX_JSON_DEPTH = 64
    assert _answer(body) == _careful_answer(body, monkeypatch)


def test_split_json_takes_the_compact_path_for_what_the_sdk_sends() -> None:
    """The SDK's batches (compact JSON) are split by orjson, not by the scanner."""
    body = json.dumps([{"n": n, "text": "a, b: c"} for n in range(100)], separators=(",", ":"))
    assert payloads._split_compact(body.encode(), 10_000) == [
        json.dumps({"n": n, "text": "a, b: c"}, separators=(",", ":")).encode() for n in range(100)
    ]


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    values = draw(st.lists(_VALUES, max_size=8))
    spacing = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    body = json.dumps(values, separators=spacing, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):  # one byte changed, inserted or removed: most such bodies break
        at = draw(st.integers(min_value=0, max_value=len(body)))
        byte = draw(st.sampled_from([b"", b" ", b",", b"]", b"[", b"{", b'"', b"\\", b"1", b"e"]))
        body = body[:at] + byte + body[at + draw(st.integers(min_value=0, max_value=1)) :]
    return body


@hypothesis_settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies())
def test_split_json_compact_path_agrees_with_the_careful_loop(
    body: bytes, settings, monkeypatch
) -> None:
    """Small limits, so generated bodies reach the depth and chunk-count refusals too."""
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 6
    settings.STREAMDASH_MAX_JSON_DEPTH = 3
    assert _answer(body) == _careful_answer(body, monkeypatch)
