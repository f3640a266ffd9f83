"""What both databases can store (streamdash/core/storable.py)."""

from __future__ import annotations

import re

import pytest

from streamdash.core.errors import BadRequest
from streamdash.core.storable import check_json, check_text


def test_check_text_refuses_nul_and_overlong_text() -> None:
    check_text("ok", name="task_id", max_length=2)
    with pytest.raises(BadRequest, match="task_id contains a NUL") as nul:
        check_text("a\x00", name="task_id", field="task_id")
    assert nul.value.facts == {"field": "task_id"}
    with pytest.raises(BadRequest, match="3 characters long; the limit is 2") as long:
        check_text("abc", name="task_id", max_length=2)
    assert long.value.facts == {"max_length": 2}


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (float("nan"), "payload is not a finite"),
        ({"a": [1, float("inf")]}, "payload['a'][1] is not a finite"),
        ([{"b": -float("inf")}], "payload[0]['b'] is not a finite"),
        ({"a": "x\x00"}, "payload['a'] contains a NUL"),
        ({"a\x00": 1}, "A key in payload contains a NUL"),
        ([[["\x00"]]], "payload[0][0][0] contains a NUL"),
    ],
)
def test_check_json_names_the_place_of_what_cannot_be_stored(value, where) -> None:
    with pytest.raises(BadRequest, match=re.escape(where)):
        check_json(value, name="payload")


def test_check_json_accepts_ordinary_json_of_any_depth() -> None:
    check_json({"a": [1, 2.5, "x", None, True, {"b": 10**100}]}, name="payload")
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    check_json(deep, name="payload")  # iterative: no RecursionError


@pytest.mark.parametrize("value", ["a\ud800", "\udfff", "x\ud83d"])
def test_check_text_refuses_lone_surrogates(value) -> None:
    with pytest.raises(BadRequest, match="lone surrogate"):
        check_text(value, name="task_id")
    with pytest.raises(BadRequest, match=re.escape("payload['k'] contains a lone surrogate")):
        check_json({"k": value}, name="payload")


def test_check_text_accepts_astral_characters() -> None:
    check_text("\U0001f600", name="task_id")
    check_json({"\U0001f600": ["\U0001f600"]}, name="payload")
