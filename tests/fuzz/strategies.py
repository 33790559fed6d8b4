"""Hypothesis strategies for everything predict and retrain read that someone else could
have written: the model manifest and object, predict's state, the history backup's day
objects, and the metric series in CloudWatch.

Each strategy draws a `Hostile` body and says what the code owes it: `refuse` when the
object is not one the writer can produce (the run must refuse it, with its metric), False
when it is a valid object the run may act on. Bodies are built as text and bytes, not
through json.dumps, so that nesting far deeper than Python's recursion limit, integers of
thousands of digits and NaN literals reach the code under test as an attacker writes them.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
import zlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
from hypothesis import strategies as st

from saleor_scaling.ensemble import ARRAY_DTYPES
from saleor_scaling.model import MAX_HORIZON_STEPS


class Hostile:
    """One hostile object: its body, what was done to it (for the falsifying example
    hypothesis prints, shortened: bodies run to megabytes) and what the code owes it."""

    def __init__(self, body: bytes, kind: str, refuse: bool | None) -> None:
        self.body = body
        self.kind = kind
        self.refuse = refuse
        """True: no writer of ours produces it, the run must refuse it (with its metric);
        None: the object's own rules decide (a hostile text may still be a valid value)."""

    def __repr__(self) -> str:
        return f"Hostile({self.kind!r}, refuse={self.refuse}, {len(self.body)} bytes: {self.body[:100]!r}...)"


# --- JSON fragments ---------------------------------------------------------------------

DEPTHS = st.sampled_from([2, 64, 1_000, 20_000, 200_000])
LIST_SIZES = st.sampled_from([3, 10_000, 300_000])


def nested(depth: int, opener: str = "[", closer: str = "]", core: str = "0") -> str:
    return opener * depth + core + closer * depth


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(DEPTHS)
    kind = draw(st.sampled_from(["list", "object"]))
    if kind == "list":
        return nested(depth)
    return '{"a":' * depth + "0" + "}" * depth


@st.composite
def huge_list(draw: st.DrawFn) -> str:
    size = draw(LIST_SIZES)
    item = draw(st.sampled_from(["0", "1e308", '"x"', "[]", "null"]))
    return "[" + ",".join([item] * size) + "]"


ABSURD_NUMBERS = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "1e308",
        "-1",
        "0",
        "-0.0",
        "1.5",
        "4.9e-324",
        "1" + "0" * 400,  # a 401-digit integer: larger than any float
        "9" * 5000,  # past Python's 4300-digit limit for int(): json.loads raises ValueError
    ]
)
ABSURD_STRINGS = st.sampled_from(
    ['"NaN"', '"Infinity"', '"1e999"', '"-1"', '"1000"', '""', '"\\u0000"', '"' + "x" * 100_000 + '"']
)
JSON_LEAVES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def json_text(value: Any) -> str:
    return json.dumps(value)  # NaN and infinities come out as NaN / Infinity, as JSON readers take them


def hostile_values(numbers: bool = True) -> st.SearchStrategy[str]:
    """JSON text of a value: wrong types, absurd numbers, NaN/inf, huge lists, deep nesting."""
    options: list[st.SearchStrategy[str]] = [
        ABSURD_STRINGS,
        deep_nesting(),
        huge_list(),
        JSON_LEAVES.filter(lambda value: not isinstance(value, int | float) or isinstance(value, bool)).map(
            json_text
        ),
    ]
    if numbers:
        options += [ABSURD_NUMBERS, JSON_LEAVES.map(json_text)]
    return st.one_of(*options)


INVALID_NUMBERS = st.one_of(
    ABSURD_STRINGS,
    deep_nesting(),
    huge_list(),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1", "0", "-0.0", "null", "true", "[]", "{}"]),
    st.just("9" * 5000),
)
"""Values that no numeric field of a manifest accepts (no finite number in any range)."""


def document_with(base: dict[str, Any], field: str, value_text: str) -> str:
    """`base` as JSON with `field` set to the raw JSON text `value_text`."""
    placeholder = "\u2063PLACEHOLDER\u2063"
    return json.dumps({**base, field: placeholder}).replace(json.dumps(placeholder), value_text)


def whole_documents() -> st.SearchStrategy[bytes]:
    """Bodies that are not a JSON object of the right shape at all."""
    return st.one_of(
        deep_nesting().map(str.encode),
        huge_list().map(str.encode),
        ABSURD_NUMBERS.map(str.encode),
        ABSURD_STRINGS.map(str.encode),
        st.binary(max_size=64),
        st.sampled_from([b"", b"\xff\xfe{}", b"{", b"null", b"[]", b"{}" * 3]),
        JSON_LEAVES.filter(lambda value: not isinstance(value, dict)).map(
            lambda value: json_text(value).encode()
        ),
    )


# --- The model manifest -----------------------------------------------------------------

DECISION_FIELDS = {"horizon_steps", "capacity_per_instance", "timezone", "headroom", "feature_names"}
"""Manifest fields whose valid values change the decision: only values no reader accepts
are drawn for them (a valid forged value is another model, which docs/security.md says a
bucket writer can substitute; the bucket policy, not this code, stops that)."""


@st.composite
def manifests(draw: st.DrawFn, honest: dict[str, Any]) -> Hostile:
    """The honest manifest with one field made hostile, an unknown field, a truncation,
    or no manifest-shaped document at all."""
    how = draw(st.sampled_from(["field", "field", "field", "unknown field", "truncated", "whole"]))
    if how == "field":
        field = draw(st.sampled_from(sorted(honest)))
        if field in DECISION_FIELDS:
            pool = INVALID_NUMBERS
            if field == "horizon_steps":
                pool = st.one_of(pool, st.integers(MAX_HORIZON_STEPS + 1, 10**30).map(str))
            if field == "timezone":
                pool = st.one_of(
                    pool, st.sampled_from(['"Mars/Olympus"', '"../../etc/passwd"', '"UTC\\u0000"'])
                )
            value = draw(pool)
            return Hostile(document_with(honest, field, value).encode(), f"{field}={value[:40]}", refuse=True)
        value = draw(hostile_values())
        return Hostile(document_with(honest, field, value).encode(), f"{field}={value[:40]}", refuse=False)
    if how == "unknown field":
        value = draw(hostile_values())
        return Hostile(document_with(honest, "extra", value).encode(), f"extra={value[:40]}", refuse=True)
    if how == "truncated":
        text = json.dumps(honest).encode()
        cut = draw(st.integers(0, len(text) - 1))
        return Hostile(text[:cut], f"truncated at {cut}", refuse=True)
    return Hostile(draw(whole_documents()), "not a manifest", refuse=True)


# --- The model object (.npz) ------------------------------------------------------------

NPY_MAGIC = b"\x93NUMPY\x01\x00"


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """An .npy header declaring `descr` and `shape`, whatever data follows it."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}".encode()
    padding = 64 - (len(NPY_MAGIC) + 2 + len(header) + 1) % 64
    header += b" " * padding + b"\n"
    return NPY_MAGIC + len(header).to_bytes(2, "little") + header


def npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def honest_members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def padded_forest(big_tree_nodes: int, trees: int) -> bytes:
    """A valid forest: one complete binary tree of `big_tree_nodes` nodes (children of i
    at 2i+1 and 2i+2, after their parent) and `trees - 1` single leaves. Small on disk,
    within every per-tree and total node bound; served padded, it is trees x width slots."""
    internal = (big_tree_nodes - 1) // 2
    index = np.arange(big_tree_nodes, dtype=np.int32)
    left = np.where(index < internal, 2 * index + 1, -1).astype(np.int32)
    right = np.where(index < internal, 2 * index + 2, -1).astype(np.int32)
    arrays = {
        "node_count": np.array([big_tree_nodes] + [1] * (trees - 1), dtype=np.int32),
        "children_left": np.concatenate([left, np.full(trees - 1, -1, dtype=np.int32)]),
        "children_right": np.concatenate([right, np.full(trees - 1, -1, dtype=np.int32)]),
        "feature": np.zeros(big_tree_nodes + trees - 1, dtype=np.int32),
        "threshold": np.zeros(big_tree_nodes + trees - 1, dtype=np.float64),
        "value": np.zeros(big_tree_nodes + trees - 1, dtype=np.float64),
        "missing_go_to_left": np.ones(big_tree_nodes + trees - 1, dtype=np.bool_),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


WRONG_DTYPES = st.sampled_from(["<f4", "<i8", "<u4", "|b1", "<f8", "<i4", "<c16", "|S4", "<U2", "|O"])


@st.composite
def model_objects(draw: st.DrawFn, honest_blob: bytes) -> Hostile:
    """The model object an attacker writes, with a manifest naming it with the right digest
    and size: truncated, bit-flipped, other arrays, lying npy headers, a zip where an npy
    belongs, and a valid forest whose padding is gigabytes."""
    members = honest_members(honest_blob)
    how = draw(
        st.sampled_from(
            [
                "truncated",
                "bit flip",
                "random bytes",
                "wrong dtype",
                "wrong shape",
                "lying header",
                "zip in npy",
                "missing member",
                "extra member",
                "padded forest",
            ]
        )
    )
    if how == "truncated":
        cut = draw(st.integers(0, len(honest_blob) - 1))
        return Hostile(honest_blob[:cut], f"truncated at {cut}", refuse=True)
    if how == "bit flip":
        position = draw(st.integers(0, len(honest_blob) - 1))
        bit = draw(st.integers(0, 7))
        flipped = bytearray(honest_blob)
        flipped[position] ^= 1 << bit
        # Not always refused: a flip in a field the zip reader ignores (the local header's
        # "version needed") leaves the same forest, which must then decide as it does.
        return Hostile(bytes(flipped), f"bit {bit} of byte {position} flipped", refuse=False)
    if how == "random bytes":
        return Hostile(draw(st.binary(min_size=1, max_size=256)), how, refuse=True)
    name = draw(st.sampled_from(sorted(ARRAY_DTYPES))) + ".npy"
    if how == "wrong dtype":
        dtype = draw(WRONG_DTYPES.filter(lambda d: np.dtype(d) != ARRAY_DTYPES[name[:-4]]))
        length = len(np.load(io.BytesIO(members[name])))
        array = np.zeros(length, dtype=dtype) if dtype != "|O" else np.array([None] * length, dtype=object)
        return Hostile(npz({**members, name: npy(array)}), f"{name} as {dtype}", refuse=True)
    if how == "wrong shape":
        shape = draw(st.sampled_from([(0,), (3, 2), (1, 1, 1), (), (100_000,)]))
        array = np.zeros(shape, dtype=ARRAY_DTYPES[name[:-4]])
        return Hostile(npz({**members, name: npy(array)}), f"{name} of shape {shape}", refuse=True)
    if how == "lying header":
        declared = draw(st.sampled_from([10**6, 10**8, 10**9, 10**12, 2**62]))
        descr = np.dtype(ARRAY_DTYPES[name[:-4]]).str
        lie = npy_header(descr, (declared,)) + b"\0" * draw(st.sampled_from([0, 8, 4096]))
        return Hostile(npz({**members, name: lie}), f"{name} declares {declared} items", refuse=True)
    if how == "zip in npy":
        return Hostile(npz({**members, name: honest_blob}), f"{name} holds a zip", refuse=True)
    if how == "missing member":
        return Hostile(npz({k: v for k, v in members.items() if k != name}), f"no {name}", refuse=True)
    if how == "extra member":
        return Hostile(npz({**members, "payload.npy": npy(np.zeros(3))}), "an extra member", refuse=True)
    big = draw(st.sampled_from([1023, 32767, 131071]))
    trees = draw(st.sampled_from([2, 100, 500]))
    return Hostile(padded_forest(big, trees), f"forest of {trees} trees, one of {big} nodes", refuse=False)


# --- Predict's state --------------------------------------------------------------------

STATE_FIELDS = (
    "format",
    "last_decision_time",
    "recommendations",
    "forecasts",
    "last_floor",
    "fallback_since",
    "last_decision",
)


OLD_FIELD_JUNK: tuple[Any, ...] = ("then", "3", -300, 0.5, False, [], 100_001, 4_102_444_800)


@st.composite
def valid_states(draw: st.DrawFn, slot: int) -> Hostile:
    """States predict itself could have written: times far behind and up to a day ahead,
    up to the 2000 entries allowed, capacities up to the bound."""
    day = 86400
    times = st.integers(0, slot + day)
    entries = draw(st.sampled_from([0, 3, 2000]))
    document: dict[str, Any] = {
        "format": 1,
        "last_decision_time": draw(st.one_of(st.integers(0, slot - 300), times)),
        "recommendations": [[draw(times), draw(st.integers(0, 100_000))]] * entries,
        "forecasts": {str(draw(times)): draw(st.floats(0, 100_000)) for _ in range(min(entries, 50))},
        "last_decision": draw(st.dictionaries(st.text(max_size=8), JSON_LEAVES, max_size=3)),
    }
    # Fields earlier versions wrote: ignored whatever they hold, never a reset.
    if draw(st.booleans()):
        document["last_floor"] = draw(st.one_of(st.integers(0, 100_000), st.sampled_from(OLD_FIELD_JUNK)))
    if draw(st.booleans()):
        document["fallback_since"] = draw(st.one_of(times, st.sampled_from(OLD_FIELD_JUNK)))
    return Hostile(json.dumps(document).encode(), "a valid state", refuse=False)


WRONG_FOR_FIELD = {
    "format": st.sampled_from(['"1"', "2", "true", "1.0", "null", "[]"]),
    "last_decision_time": st.sampled_from(['"soon"', "-1", "1.5", "true", "[]", "{}", "NaN"]),
    "recommendations": st.sampled_from(
        ['"many"', "{}", '[["x", null]]', "[[1]]", "[[1, -2]]", "[[1, 100001]]"]
    ),
    "forecasts": st.sampled_from(
        ['{"123": "NaN"}', '{"123": NaN}', '{"x": 1}', '{"1": -5}', "[]", '{"1": 1e9}']
    ),
    "last_decision": st.sampled_from(["[]", '"x"', "1", "true"]),
}


@st.composite
def corrupt_states(draw: st.DrawFn, slot: int) -> Hostile:
    """States predict never writes: each must be reset, with StateResets, and the slot
    then decided as with no state."""
    base = {
        "format": 1,
        "last_decision_time": slot - 300,
        "recommendations": [],
        "forecasts": {},
        "last_decision": {},
    }
    how = draw(
        st.sampled_from(
            ["wrong type", "deep value", "far future", "too many", "huge key", "whole", "oversized"]
        )
    )
    if how == "wrong type":
        field = draw(st.sampled_from(sorted(WRONG_FOR_FIELD)))
        value = draw(WRONG_FOR_FIELD[field])
        return Hostile(document_with(base, field, value).encode(), f"{field}={value}", refuse=True)
    if how == "deep value":
        field = draw(st.sampled_from(STATE_FIELDS))
        depth = draw(st.sampled_from([20_000, 200_000]))
        return Hostile(
            document_with(base, field, nested(depth)).encode(), f"{field} nested {depth} deep", refuse=True
        )
    if how == "far future":
        ahead = draw(st.integers(86400 + 300, 10**12))
        return Hostile(
            json.dumps({**base, "last_decision_time": slot + ahead}).encode(), f"{ahead} s ahead", refuse=True
        )
    if how == "too many":
        field = draw(st.sampled_from(["recommendations", "forecasts"]))
        entries: Any = [[0, 1]] * 2001 if field == "recommendations" else {str(k): 1.0 for k in range(2001)}
        return Hostile(json.dumps({**base, field: entries}).encode(), f"2001 {field}", refuse=True)
    if how == "huge key":
        digits = draw(st.sampled_from([4301, 5000, 100_000]))
        return Hostile(
            document_with(base, "forecasts", '{"' + "9" * digits + '": 1.0}').encode(),
            f"a {digits}-digit forecast time",
            refuse=True,
        )
    if how == "oversized":
        return Hostile(json.dumps({**base, "pad": "x" * 1_100_000}).encode(), "over 1 MB", refuse=True)
    return Hostile(
        draw(whole_documents().filter(lambda body: body not in (b"{}", b"null"))), "not a state", refuse=True
    )


# --- History day objects ----------------------------------------------------------------


def gzip_bomb(inflated: int) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1 << 20)
    return b"".join([deflater.compress(chunk) for _ in range(inflated >> 20)] + [deflater.flush()])


@st.composite
def corrupt_days(draw: st.DrawFn, honest_gzip: bytes) -> Hostile:
    """A day object that is not a day `S3HistoryArchive.write` leaves: wrong schema, wrong
    types, NaN, deep nesting, truncated gzip, not gzip, a bounded gzip bomb."""
    document = json.loads(gzip.decompress(honest_gzip))
    how = draw(
        st.sampled_from(
            ["field", "series", "value", "truncated", "not gzip", "bomb", "deep", "whole", "other day"]
        )
    )
    if how == "field":
        field = draw(st.sampled_from(["format", "start", "step", "series"]))
        value = draw(hostile_values())
        text = document_with(document, field, value)
        return Hostile(gzip.compress(text.encode(), mtime=0), f"{field}={value[:40]}", refuse=True)
    if how == "series":
        metric = draw(st.sampled_from(sorted(document["series"])))
        value = draw(
            st.one_of(
                hostile_values(numbers=False), st.just("[1.0]"), st.just("[" + ",".join(["1"] * 289) + "]")
            )
        )
        series = {**document["series"], metric: "\u2063S\u2063"}
        text = json.dumps({**document, "series": series}).replace(json.dumps("\u2063S\u2063"), value)
        return Hostile(gzip.compress(text.encode(), mtime=0), f"series {metric}={value[:40]}", refuse=True)
    if how == "value":
        metric = draw(st.sampled_from(sorted(document["series"])))
        index = draw(st.integers(0, 287))
        value = draw(
            st.sampled_from(
                ['"12"', "true", "[1.0]", '{"v": 2}', "NaN", "Infinity", "1e999", "1" + "0" * 400]
            )
        )
        values = [json.dumps(v) for v in document["series"][metric]]
        values[index] = value
        series_text = "[" + ",".join(values) + "]"
        series = {**document["series"], metric: "\u2063S\u2063"}
        text = json.dumps({**document, "series": series}).replace(json.dumps("\u2063S\u2063"), series_text)
        return Hostile(gzip.compress(text.encode(), mtime=0), f"{metric}[{index}]={value[:20]}", refuse=True)
    if how == "truncated":
        cut = draw(st.integers(0, len(honest_gzip) - 1))
        return Hostile(honest_gzip[:cut], f"gzip truncated at {cut}", refuse=True)
    if how == "not gzip":
        return Hostile(json.dumps(document).encode(), "plain JSON, not gzip", refuse=True)
    if how == "bomb":
        size = draw(st.sampled_from([2 << 20, 16 << 20]))
        return Hostile(gzip_bomb(size), f"gzip bomb of {size >> 20} MiB", refuse=True)
    if how == "deep":
        depth = draw(st.sampled_from([2_000, 200_000]))
        return Hostile(gzip.compress(nested(depth).encode(), mtime=0), f"nested {depth} deep", refuse=True)
    if how == "other day":
        return Hostile(
            gzip.compress(json.dumps({**document, "start": document["start"] + 86400}).encode()),
            "another day's start",
            refuse=True,
        )
    return Hostile(gzip.compress(draw(whole_documents()), mtime=0), "not a day document", refuse=True)


# --- The warm-up notice -----------------------------------------------------------------

WARM_UP_FIELDS = ("written_at", "until", "history_days", "needed_days", "first_model_after", "reason")


@st.composite
def warm_up_notices(draw: st.DrawFn, slot: int) -> Hostile:
    """A notice retrain could have written for the run at `slot` (valid: `refuse` False),
    one with a hostile field, an unknown field, a truncation, or no notice-shaped document
    at all (`refuse` True: it must count for nothing)."""
    written = draw(st.integers(slot - 26 * 3600 + 60, slot), label="written_at")
    honest = {
        "version": 1,
        "written_at": written,
        "until": written + 26 * 3600,
        "history_days": draw(st.floats(0.0, 2.0), label="history_days"),
        "needed_days": 2.0,
        "first_model_after": draw(
            st.integers(written - 86400, written + 3 * 86400), label="first_model_after"
        ),
        "reason": "the history spans a day",
    }
    how = draw(st.sampled_from(["valid", "field", "field", "unknown field", "truncated", "whole"]))
    if how == "valid":
        return Hostile(json.dumps(honest).encode(), "valid", refuse=False)
    if how == "field":
        field = draw(st.sampled_from(WARM_UP_FIELDS))
        if field == "reason":
            text = draw(hostile_values(numbers=True))
        elif field.endswith("_days"):
            # 0 days is a valid span; every other value here is no number of days.
            text = draw(INVALID_NUMBERS.filter(lambda value: value not in ("0", "-0.0")))
        else:
            # Epoch 0 parses, and then fails every time check: no notice either way.
            text = draw(INVALID_NUMBERS)
        if field == "reason" and text.startswith('"') and len(json.loads(text)) <= 600:
            return Hostile(document_with(honest, field, text).encode(), "a short reason", refuse=False)
        return Hostile(document_with(honest, field, text).encode(), f"{field}={text[:40]}", refuse=True)
    if how == "unknown field":
        return Hostile(json.dumps({**honest, "extra": 1}).encode(), "unknown field", refuse=True)
    body = json.dumps(honest).encode()
    if how == "truncated":
        return Hostile(body[: draw(st.integers(0, len(body) - 1))], "truncated", refuse=True)
    return Hostile(draw(whole_documents()), "whole", refuse=True)


# --- The operator's calendar of planned events ----------------------------------------------

CALENDAR_EVENT_FIELDS = ("name", "start", "end", "multiplier", "capacity", "lead_minutes")


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def calendars(draw: st.DrawFn, slot: int) -> Hostile:
    """A calendar the operator could have written around the run at `slot` (`refuse`
    False: its events may raise capacity, within MaxSize), or one damaged so that no
    calendar may be read from it (`refuse` True: the run decides as without events)."""
    events: list[dict[str, Any]] = []
    for number in range(draw(st.integers(1, 3), label="events")):
        start = draw(st.integers(slot - 3600, slot + 2 * 3600), label="start") // 60 * 60
        event: dict[str, Any] = {
            "name": f"sale-{number}",
            "start": _iso(start),
            "end": _iso(start + draw(st.integers(10, 240), label="minutes") * 60),
        }
        if draw(st.booleans()):
            event["capacity"] = draw(st.integers(1, 10_000), label="capacity")
        else:
            event["multiplier"] = draw(st.floats(1.01, 50.0), label="multiplier")  # above 1: the rule
        if draw(st.booleans()):
            event["lead_minutes"] = draw(st.integers(0, 720), label="lead")
        events.append(event)
    honest = {"format": 1, "events": events}
    how = draw(
        st.sampled_from(["valid", "field", "field", "unknown field", "too many", "truncated", "whole"])
    )
    if how == "valid":
        return Hostile(json.dumps(honest).encode(), "valid", refuse=False)
    if how == "field":
        field = draw(st.sampled_from(CALENDAR_EVENT_FIELDS))
        text = draw(hostile_values(numbers=True))
        damaged = dict(events[0])
        damaged.pop(
            "capacity" if field == "multiplier" else "multiplier" if field == "capacity" else "", None
        )
        damaged_text = '{"format": 1, "events": [' + document_with(damaged, field, text) + "]}"
        # Some hostile texts are still a valid value of the field (a name "x", a capacity 1000):
        # whether the parser must refuse is decided by the field's rule, checked in the test.
        return Hostile(damaged_text.encode(), f"{field}={text[:40]}", refuse=None)
    if how == "unknown field":
        return Hostile(
            json.dumps({"format": 1, "events": [{**events[0], "extra": 1}]}).encode(),
            "unknown field",
            refuse=True,
        )
    if how == "too many":
        many = [{**events[0], "name": f"sale-{k}"} for k in range(101)]
        return Hostile(json.dumps({"format": 1, "events": many}).encode(), "101 events", refuse=True)
    body = json.dumps(honest).encode()
    if how == "truncated":
        return Hostile(body[: draw(st.integers(0, len(body) - 1))], "truncated", refuse=True)
    return Hostile(draw(whole_documents()), "whole", refuse=True)
