"""Exact tests of `bounded.py`: a body of the bound is read and one byte more refused,
JSON nested to the bound is parsed and one level more refused, with the numbers written
down (`make mutate`)."""

from __future__ import annotations

from typing import Any

import pytest

from saleor_scaling.bounded import MAX_JSON_DEPTH, BoundError, nesting_depth, parse_json, read_body


class Body:
    """A streaming body that records how much was asked of it and whether it was closed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []
        self.closed = False

    def read(self, amount: int) -> bytes:
        self.asked.append(amount)
        return self.data[:amount]

    def close(self) -> None:
        self.closed = True


def response(data: bytes, declared: Any = "same") -> tuple[dict[str, Any], Body]:
    body = Body(data)
    result: dict[str, Any] = {"Body": body}
    if declared is not None:
        result["ContentLength"] = len(data) if declared == "same" else declared
    return result, body


def test_the_json_depth_bound_is_8():
    assert MAX_JSON_DEPTH == 8


def test_a_body_of_10_bytes_is_read_under_a_bound_of_10_and_11_refused():
    ok, body = response(b"0123456789")
    assert read_body(ok, 10, "thing") == b"0123456789"
    assert body.asked == [11]
    assert body.closed
    over, body = response(b"0123456789A")
    with pytest.raises(BoundError, match=r"^thing is 11 bytes, over the 10 byte bound$"):
        read_body(over, 10, "thing")
    assert body.asked == []  # refused on ContentLength, unread
    assert body.closed


def test_a_body_longer_than_its_content_length_claims_is_refused_after_limit_plus_1_bytes():
    lying, body = response(b"x" * 1000, declared=10)
    with pytest.raises(BoundError, match=r"^thing is over the 10 byte bound$"):
        read_body(lying, 10, "thing")
    assert body.asked == [11]
    assert body.closed
    unknown, body = response(b"x" * 11, declared=None)
    with pytest.raises(BoundError, match=r"^thing is over the 10 byte bound$"):
        read_body(unknown, 10, "thing")
    exact, body = response(b"x" * 10, declared=None)
    assert read_body(exact, 10, "thing") == b"x" * 10
    assert read_body(response(b"", declared="0")[0], 10, "thing") == b""


def test_the_body_is_closed_when_reading_fails():
    body = Body(b"")

    def broken(amount: int) -> bytes:
        raise OSError("reset")

    body.read = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="reset"):
        read_body({"Body": body, "ContentLength": 1}, 10, "thing")
    assert body.closed


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[["', 0),
        ("[]", 1),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ("[[]][[[]]]", 3),
        ('["\\"[[", ["]"]]', 2),
        ('["\\\\", [[]]]', 3),  # an escaped backslash ends before the quote that closes the string
        ("[" * 8 + "]" * 8, 8),
        ("[" * 9 + "]" * 9, 9),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(text, depth):
    assert nesting_depth(text) == depth


def test_counting_stops_one_past_the_limit():
    assert nesting_depth("[" * 50 + "]" * 50, 3) == 4
    assert nesting_depth("[" * 3 + "]" * 3, 3) == 3
    assert nesting_depth("[[[]]][[[[]]]]", 3) == 4


def test_json_nested_8_deep_is_parsed_9_refused():
    assert parse_json("[" * 8 + "]" * 8, 100, "doc") == [[[[[[[[]]]]]]]]
    with pytest.raises(BoundError, match=r"^doc is nested deeper than 8 levels$"):
        parse_json("[" * 9 + "]" * 9, 100, "doc")
    assert parse_json("[[[]]]", 100, "doc", max_depth=3) == [[[]]]
    with pytest.raises(BoundError, match=r"^doc is nested deeper than 2 levels$"):
        parse_json("[[[]]]", 100, "doc", max_depth=2)


def test_json_of_10_bytes_is_parsed_under_a_bound_of_10_and_11_refused():
    assert parse_json(b'["abcdef"]', 10, "doc") == ["abcdef"]
    assert parse_json('["abcdef"]', 10, "doc") == ["abcdef"]
    with pytest.raises(BoundError, match=r"^doc is 11 bytes, over the 10 byte bound$"):
        parse_json(b'["abcdefg"]', 10, "doc")
    with pytest.raises(BoundError, match=r"^doc is 11 bytes, over the 10 byte bound$"):
        parse_json('["abcdefg"]', 10, "doc")


def test_a_string_is_bounded_by_its_utf8_length_not_its_characters():
    # 8 characters, 10 bytes in UTF-8 (two of two bytes).
    assert parse_json('["ééab"]', 10, "doc") == ["ééab"]
    with pytest.raises(BoundError, match=r"^doc is over the 10 byte bound$"):
        parse_json('["éééa"]', 10, "doc")  # 8 characters, 11 bytes
    with pytest.raises(BoundError, match=r"^doc is over the 10 byte bound$"):
        parse_json('["\ud800\ud800\ud800"]', 10, "doc")  # 7 characters; lone surrogates are 3 bytes each


def test_undecodable_or_invalid_json_is_a_value_error():
    with pytest.raises(UnicodeDecodeError):
        parse_json(b"\xff", 10, "doc")
    with pytest.raises(ValueError, match="Expecting value"):
        parse_json("[", 10, "doc")
