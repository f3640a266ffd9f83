from __future__ import annotations

import pytest

from streamdash.core.errors import InvalidOffset
from streamdash.core.offsets import offset_for, parse_offset


def test_offsets_round_trip_and_sort_as_strings() -> None:
    assert parse_offset(offset_for(12345), tail=0) == 12345
    assert offset_for(9) < offset_for(10) < offset_for(10**15)
    assert parse_offset("-1", tail=7) == 0
    assert parse_offset("now", tail=7) == 7


@pytest.mark.parametrize(
    "offset",
    [
        "",
        "0000000000000000_000000000000001",  # 15 digits
        "0000000000000000_0000000000000001\n",  # a trailing newline is not the offset
        "0000000000000000_000000000000000²",  # non-ASCII digits
        "0000000000000000_000000000000000١",
    ],
)
def test_offsets_reject_anything_but_the_issued_shape(offset: str) -> None:
    with pytest.raises(InvalidOffset):
        parse_offset(offset, tail=0)
