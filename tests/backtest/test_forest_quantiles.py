"""The quantile regression forest that scripts/conditional_quantile_potential.py measures
(docs/backtest.md, "Conditional headroom"): its weighted quantile and its averaged leaf
quantiles, against a by-hand count and a brute-force reading of the definitions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    # The script imports its sibling (headroom_conditions) by name, as when run from scripts/.
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(
            "conditional_quantile_potential", SCRIPTS / "conditional_quantile_potential.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_two_trees_by_hand(script: ModuleType) -> None:
    # Tree 0: the anchor's leaf (7) holds rows 0 and 1; tree 1: its leaf (3) holds rows 1-3.
    train_leaves = np.array([[7, 1], [7, 3], [2, 3], [2, 3]])
    response = np.array([0.0, 1.0, 2.0, 3.0])
    by_weight, by_leaf = script.forest_quantiles(train_leaves, response, np.array([[7, 3]]))
    # Weights 1/2, 1/2 + 1/3, 1/3, 1/3 (of 2): cumulative 0.5, 1.33, 1.67, 2.
    assert by_weight[0.5][0] == 1.0  # the first to reach 1
    assert by_weight[0.6][0] == 1.0  # 1.2
    assert by_weight[0.7][0] == 2.0  # 1.4
    assert by_weight[0.9][0] == 3.0  # 1.8
    # Leaf quantiles: {0, 1} and {1, 2, 3}; at 0.5 the first of 2 and the second of 3.
    assert by_leaf[0.5][0] == pytest.approx((0.0 + 2.0) / 2)
    assert by_leaf[0.8][0] == pytest.approx((1.0 + 3.0) / 2)


def test_a_leaf_without_training_rows_counts_for_nothing(script: ModuleType) -> None:
    train_leaves = np.array([[1, 5], [1, 5], [2, 6]])
    response = np.array([0.0, 1.0, 4.0])
    # Tree 1's leaf 9 holds no row: only tree 0's leaf {0, 1} speaks.
    by_weight, by_leaf = script.forest_quantiles(train_leaves, response, np.array([[1, 9], [8, 9]]))
    assert by_weight[0.99][0] == 1.0
    assert by_leaf[0.99][0] == 1.0
    assert by_leaf[0.5][0] == 0.0
    assert np.isnan(by_leaf[0.5][1])
    assert np.isnan(by_weight[0.5][1])


def test_matches_the_definitions_on_random_forests(script: ModuleType) -> None:
    rng = np.random.default_rng(3)
    rows, trees, anchors = 40, 5, 12
    response = np.sort(rng.normal(size=rows))
    train_leaves = rng.integers(0, 6, size=(rows, trees))
    anchor_leaves = rng.integers(0, 7, size=(anchors, trees))
    anchor_leaves[-1] = 6  # a leaf no training row is in, in every tree
    by_weight, by_leaf = script.forest_quantiles(train_leaves, response, anchor_leaves)
    for a in range(anchors):
        weights = np.zeros(rows)
        leaf_values = []
        for t in range(trees):
            members = [i for i in range(rows) if train_leaves[i, t] == anchor_leaves[a, t]]
            for i in members:
                weights[i] += 1.0 / len(members)
            if members:
                leaf_values.append(sorted(response[i] for i in members))
        for q in script.QUANTILES:
            total = weights.sum()
            running, expected = 0.0, None
            for i in range(rows if total > 0 else 0):
                running += weights[i]
                if running >= q * total - 1e-9:
                    expected = response[i]
                    break
            if expected is None:
                assert np.isnan(by_weight[q][a])
                assert np.isnan(by_leaf[q][a])
                continue
            assert by_weight[q][a] == expected
            per_tree = [values[int(np.ceil(q * len(values) - 1e-9)) - 1] for values in leaf_values]
            assert by_leaf[q][a] == pytest.approx(np.mean(per_tree))
