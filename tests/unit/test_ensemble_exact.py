"""Exact tests of the forest's arrays and traversal (`ensemble.py`): every bound at its
value (accepted) and one past it (refused), the numbers written down, and forecasts of
hand-built trees whose answers are known (`make mutate`)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from saleor_scaling.ensemble import EnsembleError, TreeArrays, TreeEnsemble, ensemble_from_forest
from tests.forged_artifacts import npy_declaring, npz, npz_with_raw_member

FEATURES = 5
Arrays = dict[str, npt.NDArray[Any]]


def tree(
    left: list[int],
    right: list[int],
    feature: list[int],
    threshold: list[float],
    value: list[float],
    missing: list[bool] | None = None,
) -> TreeArrays:
    return TreeArrays(
        children_left=np.array(left, dtype=np.int32),
        children_right=np.array(right, dtype=np.int32),
        feature=np.array(feature, dtype=np.int32),
        threshold=np.array(threshold, dtype=np.float64),
        value=np.array(value, dtype=np.float64),
        missing_go_to_left=np.array(missing if missing is not None else [True] * len(left), dtype=np.bool_),
    )


def stump(
    feature: int = 0, threshold: float = 0.5, low: float = 1.0, high: float = 2.0, nan_left: bool = True
) -> TreeArrays:
    return tree(
        [1, -1, -1],
        [2, -1, -1],
        [feature, -2, -2],
        [threshold, -2.0, -2.0],
        [0.0, low, high],
        [nan_left, False, False],
    )


def leaves(count: int, value: float = 3.0) -> TreeArrays:
    """A root leaf followed by `count - 1` leaves nothing points to: every bound on the
    node count can be reached without a deep tree."""
    return tree([-1] * count, [-1] * count, [-2] * count, [-2.0] * count, [value] * count)


def chain(depth: int) -> TreeArrays:
    """`depth` splits one below the other (internal node 2k: right leaf 2k+1, left 2k+2)."""
    nodes = 2 * depth + 1
    left = [index + 2 if index % 2 == 0 and index < nodes - 1 else -1 for index in range(nodes)]
    right = [index + 1 if index % 2 == 0 and index < nodes - 1 else -1 for index in range(nodes)]
    feature = [0 if child >= 0 else -2 for child in left]
    return tree(
        left, right, feature, [0.5 if c >= 0 else -2.0 for c in left], [float(i) for i in range(nodes)]
    )


def arrays_of(trees: list[TreeArrays]) -> Arrays:
    names = ("children_left", "children_right", "feature", "threshold", "value", "missing_go_to_left")
    arrays = {name: np.concatenate([getattr(t, name) for t in trees]) for name in names}
    arrays["node_count"] = np.array([len(t.children_left) for t in trees], dtype=np.int32)
    return arrays


def load(blob: bytes) -> TreeEnsemble:
    return TreeEnsemble.from_npz(blob, FEATURES)


# --- traversal -----------------------------------------------------------------------


def test_a_value_on_the_threshold_goes_left_and_just_above_goes_right():
    ensemble = TreeEnsemble([stump(threshold=0.5)], FEATURES)
    rows = np.zeros((3, FEATURES))
    rows[:, 0] = [0.5, 0.50000006, -7.0]
    assert ensemble.predict_per_tree(rows).tolist() == [[1.0], [2.0], [1.0]]


def test_values_are_compared_in_float32_as_sklearn_does():
    # float32(0.1) = 0.100000001490116... > 0.1 (float64): sklearn sends it right.
    ensemble = TreeEnsemble([stump(threshold=0.1)], FEATURES)
    rows = np.zeros((2, FEATURES))
    rows[:, 0] = [0.1, 0.09999999]
    assert ensemble.predict_per_tree(rows).tolist() == [[2.0], [1.0]]


def test_nan_goes_where_the_node_says():
    ensemble = TreeEnsemble([stump(nan_left=True), stump(nan_left=False, low=5.0, high=6.0)], FEATURES)
    row = np.full((1, FEATURES), np.nan)
    assert ensemble.predict_per_tree(row).tolist() == [[1.0, 6.0]]


def test_each_tree_reads_its_own_feature_and_its_own_nodes():
    trees = [
        stump(feature=3, threshold=10.0, low=1.0, high=2.0),
        leaves(1, 7.0),
        tree(
            [1, 3, -1, -1, -1],
            [2, 4, -1, -1, -1],
            [4, 1, -2, -2, -2],
            [0.0, 5.0, -2, -2, -2],
            [0.0, 0.0, 30.0, 10.0, 20.0],
        ),
    ]
    ensemble = TreeEnsemble(trees, FEATURES)
    assert (ensemble.tree_count, ensemble.node_counts, ensemble.node_count, ensemble.depth) == (
        3,
        (3, 1, 5),
        9,
        2,
    )
    rows = np.array(
        [
            [0.0, 4.0, 0.0, 11.0, -1.0],  # tree 0 right; tree 2 left (f4 <= 0), then left (f1 <= 5)
            [0.0, 6.0, 0.0, 9.0, -1.0],  # tree 0 left; tree 2 left, then right
            [0.0, 0.0, 0.0, 10.0, 1.0],  # tree 0 left (on the threshold); tree 2 right
        ]
    )
    assert ensemble.predict_per_tree(rows).tolist() == [[2.0, 7.0, 10.0], [1.0, 7.0, 20.0], [1.0, 7.0, 30.0]]
    assert ensemble.predict_per_tree(rows.ravel()).tolist() == [
        [2.0, 7.0, 10.0],
        [1.0, 7.0, 20.0],
        [1.0, 7.0, 30.0],
    ]


def test_a_chain_of_32_splits_is_served_33_refused():
    ensemble = TreeEnsemble([chain(32)], FEATURES)
    assert ensemble.depth == 32
    assert ensemble.predict_per_tree(np.zeros((1, FEATURES))).tolist() == [[64.0]]  # the deepest leaf
    assert ensemble.predict_per_tree(np.ones((1, FEATURES))).tolist() == [[1.0]]
    with pytest.raises(EnsembleError, match=r"^a tree is deeper than 32"):
        TreeEnsemble([chain(33)], FEATURES)
    assert TreeEnsemble([leaves(1)], FEATURES).depth == 0
    assert TreeEnsemble([chain(1), chain(3), leaves(2)], FEATURES).depth == 3


def test_an_infinite_threshold_sends_every_number_left():
    ensemble = TreeEnsemble([stump(threshold=np.inf, nan_left=False)], FEATURES)
    rows = np.array([[1e308, 0, 0, 0, 0], [np.nan, 0, 0, 0, 0]])
    assert ensemble.predict_per_tree(rows).tolist() == [[1.0], [2.0]]


# --- the trees' own checks -------------------------------------------------------------


def test_500_trees_are_accepted_501_and_0_refused():
    assert TreeEnsemble([leaves(1)] * 500, FEATURES).tree_count == 500
    with pytest.raises(EnsembleError, match=r"^a forest needs 1 to 500 trees, not 501"):
        TreeEnsemble([leaves(1)] * 501, FEATURES)
    with pytest.raises(EnsembleError, match=r"^a forest needs 1 to 500 trees, not 0"):
        TreeEnsemble([], FEATURES)


def test_a_tree_of_131072_nodes_is_accepted_131073_refused():
    assert TreeEnsemble([leaves(131_072)], FEATURES).node_count == 131_072
    with pytest.raises(EnsembleError, match=r"^tree 1 has 131073 nodes, not 1 to 131072"):
        TreeEnsemble([leaves(1), leaves(131_073)], FEATURES)
    with pytest.raises(EnsembleError, match=r"^tree 0 has 0 nodes, not 1 to 131072"):
        TreeEnsemble([leaves(0)], FEATURES)


@pytest.mark.parametrize(
    ("forged", "message"),
    [
        (
            tree([1, -1, -1], [-1, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, 1, 2]),
            "tree 0: a node has one child",
        ),
        (
            tree([-1, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, 1, 2]),
            "tree 0: a node has one child",
        ),
        (
            tree([0, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, 1, 2]),
            "a left child index is out of range",
        ),
        (
            tree([3, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, 1, 2]),
            "a left child index is out of range",
        ),
        (
            tree([1, -1, -1], [0, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, 1, 2]),
            "a right child index is out of range",
        ),
        (
            tree([1, -1, -1], [3, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, 1, 2]),
            "a right child index is out of range",
        ),
        (tree([1, -1, -1], [2, -1, -1], [-1, -2, -2], [0.5, -2, -2], [0, 1, 2]), "outside the 5 features"),
        (tree([1, -1, -1], [2, -1, -1], [5, -2, -2], [0.5, -2, -2], [0, 1, 2]), "outside the 5 features"),
        (
            tree([1, -1, -1], [2, -1, -1], [0, -2, -2], [np.nan, -2, -2], [0, 1, 2]),
            "threshold is NaN or -inf",
        ),
        (
            tree([1, -1, -1], [2, -1, -1], [0, -2, -2], [-np.inf, -2, -2], [0, 1, 2]),
            "threshold is NaN or -inf",
        ),
        (
            tree([1, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2], [0, np.inf, 2]),
            "a node value is not finite",
        ),
        (
            tree([1, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2], [np.nan, 1, 2]),
            "a node value is not finite",
        ),
    ],
)
def test_a_malformed_tree_is_refused_naming_it(forged, message):
    with pytest.raises(EnsembleError, match=message):
        TreeEnsemble([forged], FEATURES)


def test_a_leaf_may_hold_any_feature_and_threshold_and_feature_4_of_5_is_served():
    odd_leaves = tree([1, -1, -1], [2, -1, -1], [4, 99, -7], [0.5, np.nan, -np.inf], [0, 1, 2])
    ensemble = TreeEnsemble([odd_leaves], FEATURES)
    assert ensemble.predict_per_tree(np.array([[0, 0, 0, 0, 1.0]])).tolist() == [[2.0]]


@pytest.mark.parametrize("name", ["children_right", "feature", "threshold", "value", "missing_go_to_left"])
def test_an_array_with_an_entry_too_few_is_refused(name):
    good = stump()
    short = TreeArrays(**{**good.__dict__, name: getattr(good, name)[:-1]})
    with pytest.raises(EnsembleError, match=f"^tree 0: {name} does not have one entry per node"):
        TreeEnsemble([short], FEATURES)


# --- the object's arrays ---------------------------------------------------------------


def test_the_object_round_trips_with_its_dtypes():
    ensemble = TreeEnsemble([stump(feature=2), leaves(2, 4.0)], FEATURES)
    blob = ensemble.to_npz()
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        assert sorted(archive.files) == [
            "children_left",
            "children_right",
            "feature",
            "missing_go_to_left",
            "node_count",
            "threshold",
            "value",
        ]
        assert archive["node_count"].tolist() == [3, 2]
        assert str(archive["children_left"].dtype) == "int32"
        assert str(archive["value"].dtype) == "float64"
        assert archive["children_left"].tolist() == [1, -1, -1, -1, -1]
        assert archive["value"].tolist() == [0.0, 1.0, 2.0, 4.0, 4.0]
        assert str(archive["missing_go_to_left"].dtype) == "bool"
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert {member.compress_type for member in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    loaded = load(blob)
    assert loaded.node_counts == (3, 2)
    rows = np.array([[0, 0, 0.4, 0, 0], [0, 0, 0.6, 0, 0]])
    assert loaded.predict_per_tree(rows).tolist() == [[1.0, 4.0], [2.0, 4.0]]


def test_stored_members_are_read_as_deflated_ones():
    arrays = arrays_of([stump()])
    assert load(npz(arrays, stored=tuple(arrays))).node_counts == (3,)


def test_500_trees_in_an_object_are_accepted_501_and_0_refused():
    assert load(npz(arrays_of([leaves(1)] * 500))).tree_count == 500
    with pytest.raises(EnsembleError, match=r"^node_count must list 1 to 500 trees, not 501"):
        load(npz(arrays_of([leaves(1)] * 501)))
    empty = {name: array[:0] for name, array in arrays_of([leaves(1)]).items()}
    with pytest.raises(EnsembleError, match=r"^node_count must list 1 to 500 trees, not 0"):
        load(npz(empty))


def test_node_counts_of_1_and_131072_are_read_0_and_131073_refused():
    assert load(npz(arrays_of([leaves(1), leaves(131_072)]))).node_counts == (1, 131_072)
    for counts in ([0, 2], [131_073, 1], [-1, 3]):
        arrays = arrays_of([leaves(2)])
        arrays = arrays_of([leaves(sum(counts))])
        arrays["node_count"] = np.array(counts, dtype=np.int32)
        with pytest.raises(EnsembleError, match=r"^node_count: every tree must have 1 to 131072 nodes"):
            load(npz(arrays))


def test_node_counts_that_do_not_sum_to_the_arrays_are_refused():
    arrays = arrays_of([leaves(3)])
    arrays["node_count"] = np.array([1, 1], dtype=np.int32)
    with pytest.raises(EnsembleError, match=r"^node_count sums to 2 nodes, the arrays declare 3"):
        load(npz(arrays))


@pytest.mark.parametrize("name", ["children_right", "feature", "threshold", "value", "missing_go_to_left"])
def test_a_node_array_of_another_length_is_refused_before_it_is_read(name):
    arrays = arrays_of([stump()])
    arrays[name] = arrays[name][:2]
    with pytest.raises(EnsembleError, match=f"^{name} declares 2 entries, children_left 3"):
        load(npz(arrays))


@pytest.fixture(scope="module")
def two_million_leaves() -> Arrays:
    """15 trees of 131,072 nodes and one of 33,920: 2,000,000 nodes in all."""
    return arrays_of([leaves(131_072)] * 15 + [leaves(33_920)])


def test_2_000_000_nodes_are_accepted_2_000_001_refused_unread(two_million_leaves):
    assert load(npz(two_million_leaves, stored=tuple(two_million_leaves))).node_count == 2_000_000
    over = dict(two_million_leaves)
    for name in ("children_left", "children_right", "feature", "threshold", "value", "missing_go_to_left"):
        over[name] = np.concatenate([over[name], over[name][-1:]])
    over["node_count"] = np.array([131_072] * 15 + [33_921], dtype=np.int32)
    with pytest.raises(
        EnsembleError, match=r"^children_left declares 2000001 nodes, above the 2000000 bound"
    ):
        load(npz(over, stored=tuple(over)))


def _junk_zip(first_member_bytes: int) -> bytes:
    """Seven members of the right names: node_count.npy of `first_member_bytes` zeros, the
    others one byte each."""
    buffer = io.BytesIO()
    names = (
        "node_count",
        "children_left",
        "children_right",
        "feature",
        "threshold",
        "value",
        "missing_go_to_left",
    )
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in names:
            archive.writestr(f"{name}.npy", bytes(first_member_bytes if name == "node_count" else 1))
    return buffer.getvalue()


def test_arrays_inflating_to_58_009_168_bytes_are_opened_58_009_169_refused_unread():
    # 2,000,000 x 29 + 500 x 4 + 7 x 1024; the six one-byte members make up 6 of it.
    with pytest.raises(EnsembleError, match=r"^model object cannot be read: ValueError"):
        load(_junk_zip(58_009_162))
    with pytest.raises(EnsembleError, match=r"^arrays inflate to 58009169 bytes, above 58009168"):
        load(_junk_zip(58_009_163))


def test_the_npz_must_be_one_plain_zip_of_seven_entries():
    blob = npz(arrays_of([stump()]))
    with pytest.raises(
        EnsembleError, match=r"^model object is not an npz: it does not start with a zip entry$"
    ):
        load(blob[:25])
    with pytest.raises(
        EnsembleError, match=r"^model object is not an npz: it does not start with a zip entry$"
    ):
        load(b"PK\x03\x03" + blob[4:])
    with pytest.raises(
        EnsembleError, match=r"^model object is not an npz: no plain zip end record at its end$"
    ):
        load(blob + b"\0")
    commented = bytearray(blob)
    commented[-2:] = b"\x01\x00"
    with pytest.raises(
        EnsembleError, match=r"^model object is not an npz: no plain zip end record at its end$"
    ):
        load(bytes(commented) + b"x")
    arrays = arrays_of([stump()])
    with pytest.raises(EnsembleError, match=r"^npz directory lists 8 entries, expected 7"):
        load(npz({**arrays, "extra": np.zeros(1)}))
    with pytest.raises(EnsembleError, match=r"^npz directory lists 6 entries, expected 7"):
        load(npz({name: a for name, a in arrays.items() if name != "value"}))


def test_a_directory_not_just_before_its_end_record_is_refused():
    blob = bytearray(npz(arrays_of([stump()])))
    offset = int.from_bytes(blob[-6:-2], "little")
    blob[-6:-2] = (offset - 1).to_bytes(4, "little")
    with pytest.raises(EnsembleError, match=r"^npz directory is \d+ bytes at \d+: above the 4096 byte bound"):
        load(bytes(blob))


def test_members_of_the_wrong_names_are_refused():
    arrays = arrays_of([stump()])
    renamed = {("value2" if name == "value" else name): array for name, array in arrays.items()}
    with pytest.raises(
        EnsembleError,
        match=(
            r"^arrays \['children_left.npy', .*'value2.npy'\] "
            r"are not the expected \['children_left.npy', .*'value.npy'\]$"
        ),
    ):
        load(npz(renamed))


def test_a_bzip2_member_is_refused():
    arrays = arrays_of([stump()])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            inner = io.BytesIO()
            np.save(inner, array, allow_pickle=False)
            method = zipfile.ZIP_BZIP2 if name == "value" else zipfile.ZIP_DEFLATED
            archive.writestr(f"{name}.npy", inner.getvalue(), compress_type=method)
    with pytest.raises(EnsembleError, match=r"^value\.npy is encrypted or compressed other than by deflate"):
        load(buffer.getvalue())


def _npy_v2(array: npt.NDArray[Any]) -> bytes:
    inner = io.BytesIO()
    np.lib.format.write_array(inner, array, version=(2, 0), allow_pickle=False)
    return inner.getvalue()


def test_npy_format_2_is_read_and_format_3_refused():
    arrays = arrays_of([stump()])
    assert load(npz_with_raw_member(arrays, "value", _npy_v2(arrays["value"]))).node_counts == (3,)
    v3 = bytearray(_npy_v2(arrays["value"]))
    v3[6] = 3
    with pytest.raises(EnsembleError, match=r"^value.npy has format version \(3, 0\), expected 1.0 or 2.0"):
        load(npz_with_raw_member(arrays, "value", bytes(v3)))


def test_a_fortran_ordered_or_scalar_array_is_refused():
    arrays = arrays_of([stump()])
    header = repr({"descr": "<f8", "fortran_order": True, "shape": (3,)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + np.zeros(3).tobytes()
    with pytest.raises(EnsembleError, match=r"^value has shape \(3,\), expected one-dimensional"):
        load(npz_with_raw_member(arrays, "value", raw))
    with pytest.raises(EnsembleError, match=r"^value has shape \(\), expected one-dimensional"):
        load(npz_with_raw_member(arrays, "value", npy_declaring((), "<f8", np.zeros(1).tobytes())))


def test_an_entry_with_a_byte_too_few_is_refused():
    arrays = arrays_of([stump()])
    raw = npy_declaring((3,), "<f8", np.zeros(3).tobytes()[:-1])
    with pytest.raises(
        EnsembleError, match=r"^value declares 3 entries \(24 bytes\), its entry holds 23 bytes"
    ):
        load(npz_with_raw_member(arrays, "value", raw))


def test_a_header_of_1024_bytes_is_read_and_longer_refused():
    arrays = arrays_of([stump()])

    def padded(length: int) -> bytes:
        header = repr({"descr": "<f8", "fortran_order": False, "shape": (3,)}).encode()
        header += b" " * (length - 1 - len(header)) + b"\n"
        return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + np.zeros(3).tobytes()

    assert load(npz_with_raw_member(arrays, "value", padded(1024))).node_counts == (3,)
    with pytest.raises(
        EnsembleError, match=r"^model object cannot be read: ValueError: Header info length \(1025\) is large"
    ):
        load(npz_with_raw_member(arrays, "value", padded(1025)))


def test_a_multi_output_forest_is_refused():
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=2, max_depth=2, random_state=0)
    forest.fit(np.arange(20.0).reshape(10, 2), np.arange(20.0).reshape(10, 2))
    with pytest.raises(EnsembleError, match=r"^only single-output regression trees are supported"):
        ensemble_from_forest(forest)
    single = RandomForestRegressor(n_estimators=3, max_depth=2, random_state=0)
    single.fit(np.arange(20.0).reshape(10, 2), np.arange(10.0))
    converted = ensemble_from_forest(single)
    assert (converted.tree_count, converted.feature_count) == (3, 2)
    rows = np.arange(20.0).reshape(10, 2)
    expected = np.stack([estimator.predict(rows) for estimator in single.estimators_], axis=1)
    assert np.array_equal(converted.predict_per_tree(rows), expected)


def test_a_forest_of_one_feature_reads_no_other():
    """Leaves point at feature 0: with one feature, any other index is outside the row."""
    ensemble = TreeEnsemble([leaves(1, 9.0), stump(threshold=0.0)], 1)
    assert ensemble.predict_per_tree(np.array([[5.0], [-5.0]])).tolist() == [[9.0, 2.0], [9.0, 1.0]]


def test_a_zip64_locator_before_the_end_record_is_refused():
    blob = npz(arrays_of([stump()]))
    locator = b"PK\x06\x07" + bytes(16)
    forged = blob[:-22] + locator + blob[-22:]
    with pytest.raises(
        EnsembleError, match=r"^model object is not an npz: no plain zip end record at its end$"
    ):
        load(forged)


def test_a_26_byte_object_is_looked_at_25_refused_at_once():
    end = b"PK\x05\x06" + (0).to_bytes(4, "little") + (7).to_bytes(2, "little") * 2
    end += (0).to_bytes(4, "little") + (4).to_bytes(4, "little") + (0).to_bytes(2, "little")
    smallest = b"PK\x03\x04" + end
    assert len(smallest) == 26
    with pytest.raises(EnsembleError, match=r"^arrays \[\] are not the expected \[.children_left.npy."):
        load(smallest)
    with pytest.raises(
        EnsembleError, match=r"^model object is not an npz: it does not start with a zip entry$"
    ):
        load(smallest[:25])
