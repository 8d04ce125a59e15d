"""HTTP Range parsing for files served from local storage (RFC 9110 §14)."""

from __future__ import annotations

import pytest

from courseware.ranges import RangeNotSatisfiable, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=990-2000", (990, 999)),  # a last byte past the end is clipped
        ("bytes=500-", (500, 999)),  # open range: to the end
        ("bytes=0-", (0, 999)),
        ("bytes=-100", (900, 999)),  # suffix range: the last 100 bytes
        ("bytes=-5000", (0, 999)),  # a suffix longer than the file is the whole file
        (" bytes=10-19 ", (10, 19)),
    ],
)
def test_a_single_range_gives_the_inclusive_byte_span(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # starts at the end
        "bytes=1000-1001",
        "bytes=5000-6000",
        "bytes=-0",  # zero-length suffix
        "bytes=20-10",  # last before first
    ],
)
def test_a_range_outside_the_file_is_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


@pytest.mark.parametrize("header", ["bytes=-10", "bytes=0-", "bytes=0-0"])
def test_no_range_of_an_empty_file_is_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 0)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=-",  # no numbers at all
        "bytes=abc-def",
        "items=0-10",  # unknown unit
        "bytes=0-10,20-30",  # multi-range: the whole file is an allowed answer
        "bytes 0-10",
        "bytes=0x10-",
    ],
)
def test_a_missing_or_malformed_header_asks_for_the_whole_file(header: str | None) -> None:
    assert parse_range(header, SIZE) is None
