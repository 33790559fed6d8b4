"""The forest as plain arrays: what the model object holds, and how forecasts are served.

A pickle runs code when loaded, so whoever can write the model bucket could run code in
predict, retrain and on the operator's machine. The model object is instead an `.npz` of
numeric arrays (loaded with `allow_pickle=False`), one row of nodes per tree as sklearn's
`tree_` holds them. Everything in it is checked before use: the worst a forged object can
do is be another forest, whose forecasts the manifest's validated bounds then limit.

Forecasts come from our own traversal of every tree at once, never from sklearn, so
predict, retraining and the backtest all serve through this one code path. It reproduces
`DecisionTreeRegressor.predict` bit for bit: sklearn casts X to float32, sends NaN to the
side `missing_go_to_left` names, and otherwise goes left where
`float32(x) <= float64 threshold` (sklearn/tree/_tree.pyx, `_apply_dense`).
"""

from __future__ import annotations

import io
import itertools
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
under 2 x 105k / 4 = 53k nodes; twice that leaves room without letting a forged object
make predict allocate gigabytes."""
MAX_TOTAL_NODES = 4_000_000
MAX_DEPTH = 32
"""Deeper than any MAX_DEPTH the settings allow (20); also the traversal's loop bound."""
MAX_UNCOMPRESSED_BYTES = 200_000_000
"""Checked on the zip directory before anything is inflated: a small object that
decompresses to gigabytes is refused unread."""

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
    """Every tree padded into [tree, node] arrays, flattened so that one gather per step
    moves all rows down all trees. Leaves loop to themselves with threshold +inf, so
    `depth` steps land every row on its leaf whatever path it took."""

    def __init__(self, trees: list[TreeArrays], feature_count: int) -> None:
        _check_trees(trees, feature_count)
        self.tree_count = len(trees)
        self.feature_count = feature_count
        self.node_counts = tuple(len(tree.children_left) for tree in trees)
        width = max(self.node_counts)
        total = self.tree_count * width
        offsets = np.arange(self.tree_count, dtype=np.int64) * width
        # Padding slots are unreachable; as self-looping leaves they are harmless anyway.
        left = np.arange(total, dtype=np.int64)
        right = left.copy()
        feature = np.zeros(total, dtype=np.int64)
        threshold = np.full(total, np.inf)
        value = np.zeros(total)
        missing_left = np.ones(total, dtype=np.bool_)
        for offset, tree in zip(offsets, trees, strict=True):
            nodes = np.arange(len(tree.children_left), dtype=np.int64)
            internal = tree.children_left != TREE_LEAF
            slots = offset + nodes
            left[slots] = np.where(internal, offset + tree.children_left, slots)
            right[slots] = np.where(internal, offset + tree.children_right, slots)
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
        """Read and validate; anything malformed is an EnsembleError, never an IndexError."""
        arrays = _read_arrays(blob)
        counts = arrays["node_count"]
        if counts.ndim != 1 or not 1 <= len(counts) <= MAX_TREES:
            raise EnsembleError(f"node_count must list 1 to {MAX_TREES} trees")
        if np.any(counts < 1) or np.any(counts > MAX_NODES_PER_TREE):
            raise EnsembleError(f"every tree must have 1 to {MAX_NODES_PER_TREE} nodes")
        total = int(np.sum(counts, dtype=np.int64))
        if total > MAX_TOTAL_NODES:
            raise EnsembleError(f"{total} nodes in all, above the {MAX_TOTAL_NODES} bound")
        for name in ARRAY_DTYPES:
            if name != "node_count" and arrays[name].shape != (total,):
                raise EnsembleError(f"{name} has shape {arrays[name].shape}, expected ({total},)")
        bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        trees = [
            TreeArrays(**{name: arrays[name][start:end] for name in ARRAY_DTYPES if name != "node_count"})
            for start, end in itertools.pairwise(bounds)
        ]
        return cls(trees, feature_count)


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
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            members = archive.infolist()
            names = {member.filename for member in members}
            expected = {f"{name}.npy" for name in ARRAY_DTYPES}
            if names != expected or len(members) != len(expected):
                raise EnsembleError(f"arrays {sorted(names)} are not the expected {sorted(expected)}")
            inflated = sum(member.file_size for member in members)
            if inflated > MAX_UNCOMPRESSED_BYTES:
                raise EnsembleError(f"arrays inflate to {inflated} bytes, above {MAX_UNCOMPRESSED_BYTES}")
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ARRAY_DTYPES}
    except EnsembleError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        # allow_pickle=False makes an object array a ValueError instead of code.
        raise EnsembleError(f"model object is not a readable npz of numeric arrays: {error}") from error
    for name, dtype in ARRAY_DTYPES.items():
        if arrays[name].dtype != dtype:
            raise EnsembleError(f"{name} has dtype {arrays[name].dtype}, expected {dtype}")
    return arrays


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


def _depth(left: npt.NDArray[np.int64], right: npt.NDArray[np.int64], roots: npt.NDArray[np.int64]) -> int:
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
