"""The forest as plain arrays: what the model object holds, and how forecasts are served.

A pickle runs code when loaded, so whoever can write the model bucket could run code in
predict, retrain and on the operator's machine. The model object is instead an `.npz` of
numeric arrays, one row of nodes per tree as sklearn's `tree_` holds them. The zip
directory and each array's `.npy` header are read and checked by this code (sizes, names,
dtypes, shapes, how many nodes in all) before any array is allocated, and the arrays are
then read as raw numbers of the declared dtype: numpy allocates whatever a header declares,
so a header is never handed to it unchecked. The memory a forest costs follows from its
total node count (the trees are laid end to end, never padded to the widest), which is
bounded to fit predict's 512 MB. Everything in the arrays is checked before use.

Forecasts come from our own traversal of every tree at once, never from sklearn, so
predict, retraining and the backtest all serve through this one code path. It reproduces
`DecisionTreeRegressor.predict` bit for bit: sklearn casts X to float32, sends NaN to the
side `missing_go_to_left` names, and otherwise goes left where
`float32(x) <= float64 threshold` (sklearn/tree/_tree.pyx, `_apply_dense`).
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from saleor_scaling.series import FloatArray

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestRegressor

MAX_TREES = 500
"""As many as N_ESTIMATORS may ask for (settings: [10, 500])."""
MAX_NODES_PER_TREE = 1 << 17
"""Depth 20 (MAX_DEPTH's bound) on a year of 5-minute rows with 4 rows per leaf stays
under 2 x 105k / 4 = 53k nodes; twice that leaves room for any one tree."""
MAX_TOTAL_NODES = 2_000_000
"""What a forest may hold in all, from memory: a loaded forest keeps its arrays as read
and the serving layout built from them, 58 bytes a node (`BYTES_PER_NODE_READ` and
`BYTES_PER_NODE_SERVED`), 116 MB at this bound. Predict (MemorySize 512 MB) holds the model
it served while it loads the next: two forests at this bound and their 34 MB object peak
at 257 MB over the interpreter (tests/unit/test_model_memory.py, under an address-space
limit). The defaults (60 trees of depth 12) make about 75,000 nodes on 28 days of
synthetic traffic; 2 million is 500 trees of 4,000 nodes, or 60 of 33,000."""
BYTES_PER_NODE_READ = 4 + 4 + 4 + 8 + 8 + 1
"""children_left, children_right, feature (int32), threshold, value (float64), missing (bool)."""
BYTES_PER_NODE_SERVED = BYTES_PER_NODE_READ
"""The serving layout keeps the same widths (child and feature indices as int32)."""
MAX_DEPTH = 32
"""Deeper than any MAX_DEPTH the settings allow (20); also the traversal's loop bound."""
NPY_HEADER_BYTES = 1024
"""An `.npy` header this code writes is 118 bytes (magic, length, a short dict, padding to
64); numpy itself reads up to 10,000 with `ast.literal_eval`."""
MAX_UNCOMPRESSED_BYTES = MAX_TOTAL_NODES * BYTES_PER_NODE_READ + MAX_TREES * 4 + 7 * NPY_HEADER_BYTES
"""The arrays at their bounds: checked on the zip directory before anything is inflated,
so a small object that decompresses to gigabytes is refused unread."""
MAX_DIRECTORY_BYTES = 4096
"""The zip central directory of the seven arrays is about 430 bytes. zipfile turns every
entry of a directory into an object before anyone sees the names: a directory of a million
entries fits in 47 MB (inside the object's 50 MB bound) and costs predict hundreds of MB,
so the directory's size is read from its end record and checked first."""

ZIP_LOCAL_HEADER = b"PK\x03\x04"
ZIP_END_RECORD = struct.Struct("<4s4H2LH")
"""End of central directory: signature, disk numbers (2), entries on this disk and in
all, directory size and offset, comment length."""
ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"

TREE_LEAF = -1
"""sklearn's child index for a leaf (`sklearn.tree._tree.TREE_LEAF`)."""

IntArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]

ARRAY_DTYPES: dict[str, np.dtype[Any]] = {
    "node_count": np.dtype(np.int32),
    "children_left": np.dtype(np.int32),
    "children_right": np.dtype(np.int32),
    "feature": np.dtype(np.int32),
    "threshold": np.dtype(np.float64),
    "value": np.dtype(np.float64),
    "missing_go_to_left": np.dtype(np.bool_),
}
"""The object's arrays: `node_count` per tree, the others one entry per node, the trees'
nodes one after another (node indices are local to their tree, as in sklearn)."""


class EnsembleError(ValueError):
    """The arrays do not describe a forest this code can serve."""


@dataclass(frozen=True)
class TreeArrays:
    """One tree's nodes as sklearn's `tree_` holds them (children TREE_LEAF at leaves)."""

    children_left: IntArray
    children_right: IntArray
    feature: IntArray
    threshold: FloatArray
    value: FloatArray
    missing_go_to_left: BoolArray


class TreeEnsemble:
    """Every tree's nodes laid end to end in flat arrays, child indices made global, so
    that one gather per step moves all rows down all trees. Leaves loop to themselves
    with threshold +inf, so `depth` steps land every row on its leaf whatever path it
    took. Nothing is padded: the memory is the total node count times a fixed width."""

    def __init__(self, trees: list[TreeArrays], feature_count: int) -> None:
        _check_trees(trees, feature_count)
        self.tree_count = len(trees)
        self.feature_count = feature_count
        self.node_counts = tuple(len(tree.children_left) for tree in trees)
        total = sum(self.node_counts)
        offsets = np.concatenate([[0], np.cumsum(self.node_counts[:-1], dtype=np.int64)]).astype(np.int64)
        left = np.arange(total, dtype=np.int32)
        right = left.copy()
        feature = np.zeros(total, dtype=np.int32)
        threshold = np.full(total, np.inf)
        value = np.zeros(total)
        missing_left = np.ones(total, dtype=np.bool_)
        for offset, tree in zip(offsets, trees, strict=True):
            slots = slice(int(offset), int(offset) + len(tree.children_left))
            internal = tree.children_left != TREE_LEAF
            own = left[slots]  # each slot's own index: where a leaf points
            left[slots] = np.where(internal, offset + tree.children_left, own)
            right[slots] = np.where(internal, offset + tree.children_right, own)
            feature[slots] = np.where(internal, tree.feature, 0)
            threshold[slots] = np.where(internal, tree.threshold, np.inf)
            value[slots] = tree.value
            missing_left[slots] = np.where(internal, tree.missing_go_to_left, True)
        self._roots = offsets
        self._left, self._right, self._feature = left, right, feature
        self._threshold, self._value, self._missing_left = threshold, value, missing_left
        self.depth = _depth(left, right, offsets)
        self._trees = trees

    @property
    def node_count(self) -> int:
        return sum(self.node_counts)

    def predict_per_tree(self, features: FloatArray) -> FloatArray:
        """Each tree's prediction for each row: [rows, trees], float64, equal to sklearn's
        `tree.predict(features)` for every tree."""
        rows = np.asarray(features, dtype=np.float64).reshape(-1, self.feature_count)
        # sklearn compares in float32 (DTYPE) against float64 thresholds; so do we.
        values32 = rows.astype(np.float32)
        row_offsets = (np.arange(len(rows), dtype=np.int64) * self.feature_count)[:, None]
        flat = values32.ravel()
        nodes = np.broadcast_to(self._roots, (len(rows), self.tree_count)).copy()
        for _ in range(self.depth):
            x = flat[row_offsets + self._feature[nodes]]
            go_left = np.where(np.isnan(x), self._missing_left[nodes], x <= self._threshold[nodes])
            nodes = np.where(go_left, self._left[nodes], self._right[nodes])
        per_tree: FloatArray = self._value[nodes]
        return per_tree

    def to_npz(self) -> bytes:
        counts = np.array(self.node_counts, dtype=np.int32)
        arrays = {
            "node_count": counts,
            **{
                name: np.concatenate([getattr(tree, name) for tree in self._trees]).astype(ARRAY_DTYPES[name])
                for name in ARRAY_DTYPES
                if name != "node_count"
            },
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, blob: bytes, feature_count: int) -> TreeEnsemble:
        """Read and validate; anything malformed, and any exception on the way (a
        MemoryError included), is an EnsembleError."""
        try:
            arrays = _read_arrays(blob)
            counts = arrays["node_count"]
            bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
            trees = [
                TreeArrays(**{name: arrays[name][start:end] for name in ARRAY_DTYPES if name != "node_count"})
                for start, end in itertools.pairwise(bounds)
            ]
            return cls(trees, feature_count)
        except EnsembleError:
            raise
        except Exception as error:
            raise EnsembleError(f"model object cannot be read: {type(error).__name__}: {error}") from error


def ensemble_from_forest(forest: RandomForestRegressor) -> TreeEnsemble:
    """The one conversion from a fitted forest: training calls it, and from then on nothing
    forecasts through sklearn."""
    trees = []
    for estimator in forest.estimators_:
        tree = estimator.tree_
        if tree.value.shape[1:] != (1, 1):
            raise EnsembleError("only single-output regression trees are supported")
        trees.append(
            TreeArrays(
                children_left=tree.children_left.astype(np.int32),
                children_right=tree.children_right.astype(np.int32),
                feature=tree.feature.astype(np.int32),
                threshold=tree.threshold.astype(np.float64),
                value=tree.value[:, 0, 0].astype(np.float64),
                missing_go_to_left=tree.missing_go_to_left.astype(np.bool_),
            )
        )
    return TreeEnsemble(trees, int(forest.n_features_in_))


def _read_arrays(blob: bytes) -> dict[str, npt.NDArray[Any]]:
    """The seven arrays, each checked on its zip entry and `.npy` header before a byte of
    it is allocated; `node_count` is read first, and the node arrays only once their
    declared length is the sum of its counts."""
    _check_zip_directory(blob)
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise EnsembleError(f"model object is not a readable npz of numeric arrays: {error}") from error
    with archive:
        members = {member.filename: member for member in archive.infolist()}
        expected = {f"{name}.npy" for name in ARRAY_DTYPES}
        if set(members) != expected or len(archive.infolist()) != len(expected):
            raise EnsembleError(f"arrays {sorted(members)[:10]} are not the expected {sorted(expected)}")
        for member in members.values():
            if member.flag_bits & 0x1 or member.compress_type not in (
                zipfile.ZIP_STORED,
                zipfile.ZIP_DEFLATED,
            ):
                raise EnsembleError(
                    f"{member.filename} is encrypted or compressed other than by deflate (npz)"
                )
        inflated = sum(member.file_size for member in members.values())
        if inflated > MAX_UNCOMPRESSED_BYTES:
            raise EnsembleError(f"arrays inflate to {inflated} bytes, above {MAX_UNCOMPRESSED_BYTES}")
        layouts = {name: _array_layout(archive, members[f"{name}.npy"], name) for name in ARRAY_DTYPES}
        tree_count = layouts["node_count"][1]
        if not 1 <= tree_count <= MAX_TREES:
            raise EnsembleError(f"node_count must list 1 to {MAX_TREES} trees, not {tree_count}")
        node_total = layouts["children_left"][1]
        if node_total > MAX_TOTAL_NODES:
            raise EnsembleError(
                f"children_left declares {node_total} nodes, above the {MAX_TOTAL_NODES} bound"
            )
        for name, (_, count) in layouts.items():
            if name != "node_count" and count != node_total:
                raise EnsembleError(f"{name} declares {count} entries, children_left {node_total}")
        counts = _read_array(archive, members["node_count.npy"], "node_count", layouts["node_count"])
        if np.any(counts < 1) or np.any(counts > MAX_NODES_PER_TREE):
            raise EnsembleError(f"node_count: every tree must have 1 to {MAX_NODES_PER_TREE} nodes")
        total = int(np.sum(counts, dtype=np.int64))
        if total != node_total:
            raise EnsembleError(f"node_count sums to {total} nodes, the arrays declare {node_total}")
        arrays = {"node_count": counts}
        for name in ARRAY_DTYPES:
            if name != "node_count":
                arrays[name] = _read_array(archive, members[f"{name}.npy"], name, layouts[name])
    return arrays


def _check_zip_directory(blob: bytes) -> None:
    """The object is one plain zip, as `to_npz` writes it: a local entry at its start (no
    other file in front, which np.load would read instead), the end record at its end
    (no comment, no zip64 record, which would let the directory grow past this check),
    and a directory of seven entries within MAX_DIRECTORY_BYTES."""
    size = ZIP_END_RECORD.size
    if len(blob) < len(ZIP_LOCAL_HEADER) + size or not blob.startswith(ZIP_LOCAL_HEADER):
        raise EnsembleError("model object is not an npz: it does not start with a zip entry")
    signature, disk, directory_disk, disk_entries, entries, directory_size, directory_offset, comment = (
        ZIP_END_RECORD.unpack_from(blob, len(blob) - size)
    )
    if signature != b"PK\x05\x06" or comment != 0 or blob[-size - 20 : -size - 16] == ZIP64_LOCATOR_SIGNATURE:
        raise EnsembleError("model object is not an npz: no plain zip end record at its end")
    if (disk, directory_disk, disk_entries, entries) != (0, 0, len(ARRAY_DTYPES), len(ARRAY_DTYPES)):
        raise EnsembleError(f"npz directory lists {entries} entries, expected {len(ARRAY_DTYPES)}")
    if directory_size > MAX_DIRECTORY_BYTES or directory_offset + directory_size != len(blob) - size:
        raise EnsembleError(
            f"npz directory is {directory_size} bytes at {directory_offset}: above the "
            f"{MAX_DIRECTORY_BYTES} byte bound or not just before the end record"
        )


def _array_layout(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> tuple[int, int]:
    """(where the data starts, how many entries) from the `.npy` header, which must
    declare this array's dtype and one dimension, and must account for every byte of
    the entry."""
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream, max_header_size=NPY_HEADER_BYTES)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream, max_header_size=NPY_HEADER_BYTES)
        else:
            raise EnsembleError(f"{name}.npy has format version {version}, expected 1.0 or 2.0")
        data_start = stream.tell()
    shape, fortran_order, dtype = header
    if dtype != ARRAY_DTYPES[name]:
        raise EnsembleError(f"{name} has dtype {dtype}, expected {ARRAY_DTYPES[name]}")
    if not isinstance(shape, tuple) or len(shape) != 1 or fortran_order:
        raise EnsembleError(f"{name} has shape {shape}, expected one-dimensional")
    count = shape[0]
    if member.file_size != data_start + count * dtype.itemsize:
        raise EnsembleError(
            f"{name} declares {count} entries ({count * dtype.itemsize} bytes), its entry holds "
            f"{member.file_size - data_start} bytes of data"
        )
    return data_start, count


def _read_array(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, layout: tuple[int, int]
) -> npt.NDArray[Any]:
    data_start, count = layout
    dtype = ARRAY_DTYPES[name]
    with archive.open(member) as stream:
        stream.seek(data_start)
        data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise EnsembleError(f"{name} is truncated")
    array: npt.NDArray[Any] = np.frombuffer(data, dtype=dtype)
    return array


def _check_trees(trees: list[TreeArrays], feature_count: int) -> None:
    if not 1 <= len(trees) <= MAX_TREES:
        raise EnsembleError(f"a forest needs 1 to {MAX_TREES} trees, not {len(trees)}")
    for number, tree in enumerate(trees):
        count = len(tree.children_left)
        if not 1 <= count <= MAX_NODES_PER_TREE:
            raise EnsembleError(f"tree {number} has {count} nodes, not 1 to {MAX_NODES_PER_TREE}")
        for name in ARRAY_DTYPES:
            if name != "node_count" and getattr(tree, name).shape != (count,):
                raise EnsembleError(f"tree {number}: {name} does not have one entry per node")
        left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
        leaf = left == TREE_LEAF
        if np.any(leaf != (right == TREE_LEAF)):
            raise EnsembleError(f"tree {number}: a node has one child")
        internal = ~leaf
        nodes = np.arange(count)
        # sklearn adds children after their parent; requiring it rules out every cycle
        # (and so every endless walk) with one comparison per node.
        for side, children in (("left", left), ("right", right)):
            if np.any((children[internal] <= nodes[internal]) | (children[internal] >= count)):
                raise EnsembleError(
                    f"tree {number}: a {side} child index is out of range or not after its parent"
                )
        features = tree.feature[internal]
        if np.any((features < 0) | (features >= feature_count)):
            raise EnsembleError(f"tree {number}: a split feature is outside the {feature_count} features")
        thresholds = tree.threshold[internal]
        # +inf is sklearn's split of missing values from all others (every number goes
        # left); NaN or -inf thresholds it never writes.
        if not np.all(np.isfinite(thresholds) | (thresholds == np.inf)):
            raise EnsembleError(f"tree {number}: a split threshold is NaN or -inf")
        if not np.all(np.isfinite(tree.value)):
            raise EnsembleError(f"tree {number}: a node value is not finite")


def _depth(left: IntArray, right: IntArray, roots: npt.NDArray[np.int64]) -> int:
    """Steps from the roots to the deepest leaf; over MAX_DEPTH is refused."""
    frontier = roots
    reached = np.zeros(len(left), dtype=np.bool_)
    for depth in range(MAX_DEPTH + 1):
        internal = frontier[left[frontier] != frontier]
        if len(internal) == 0:
            return depth
        # The next level's nodes, each once: a mask instead of np.unique's hashing, which
        # was half the conversion's time (a backtest converts two forests a night).
        reached[:] = False
        reached[left[internal]] = True
        reached[right[internal]] = True
        frontier = np.flatnonzero(reached)
    raise EnsembleError(f"a tree is deeper than {MAX_DEPTH}")
