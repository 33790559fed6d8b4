"""Reading what the bucket holds without trusting its size or its shape.

Whoever can write the bucket chooses every byte predict, retrain and the rollback command
read from it: an object's length, whatever its ContentLength claims, and a JSON document's
nesting, which the standard parser follows one stack frame per level (a RecursionError at
about a thousand levels, long before any size bound). So every object is read with a
bound on its body, and every JSON document has its size and its depth checked on the raw
text before it is parsed. Both refusals are a `BoundError` (a ValueError), so each reader's
existing "unreadable" path handles them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_JSON_DEPTH = 8
"""Twice the deepest document this code writes: the manifest's headroom factors are four
levels down (manifest, headroom, factors, one band); the state and a history day are three
(state, recommendations, one pair; day, series, one series). Deeper is not ours."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
"""A JSON string literal, escapes included (an unrolled loop: linear, no backtracking)."""
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BoundError(ValueError):
    """An object or document is larger or deeper than anything this code writes."""


def read_body(response: Mapping[str, Any], limit: int, what: str) -> bytes:
    """The body of an S3 `get_object` response, refused past `limit` bytes: first on its
    declared ContentLength, before a byte is read, then on what the stream actually
    holds (never more than `limit` + 1 bytes are read, whatever ContentLength said)."""
    body = response["Body"]
    try:
        declared = response.get("ContentLength")
        if declared is not None and int(declared) > limit:
            raise BoundError(f"{what} is {int(declared)} bytes, over the {limit} byte bound")
        data = bytes(body.read(limit + 1))
        if len(data) > limit:
            raise BoundError(f"{what} is over the {limit} byte bound")
        return data
    finally:
        body.close()


def nesting_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply `text`'s arrays and objects nest, counting brackets outside string
    literals; stops counting once past `limit` (the answer is then limit + 1)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub('""', text))
    depth = deepest = 0
    for bracket in brackets:
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def parse_json(raw: bytes | str, max_bytes: int, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`raw` as JSON, refused (BoundError) above `max_bytes` or nested deeper than
    `max_depth` before the parser sees it; not UTF-8 or not JSON is a ValueError too."""
    if len(raw) > max_bytes:  # a str's length in characters is at most its UTF-8 length
        raise BoundError(f"{what} is {len(raw)} bytes, over the {max_bytes} byte bound")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BoundError(f"{what} is over the {max_bytes} byte bound")
    if nesting_depth(text, max_depth) > max_depth:
        raise BoundError(f"{what} is nested deeper than {max_depth} levels")
    return json.loads(text)
