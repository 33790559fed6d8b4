"""The model object's format: numeric arrays only, validated, and served bit for bit as
sklearn's trees predict; the manifest refused field by field."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from saleor_scaling.ensemble import TreeEnsemble, ensemble_from_forest
from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.model import (
    ModelCompatibilityError,
    ModelIntegrityError,
    ModelMetadata,
    ServingBounds,
    load_verified,
)
from saleor_scaling.training import TrainingConfig, build_model, fit_forest, training_rows
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400
BOUNDS = ServingBounds(1000.0)
Arrays = dict[str, npt.NDArray[Any]]


@pytest.fixture(scope="module")
def history():
    return synthetic_history(MONDAY, 9)


@pytest.fixture(scope="module")
def forest_and_rows(history):
    rows = training_rows(history, 4, "UTC")
    return fit_forest(rows, TrainingConfig(horizon_steps=4, n_estimators=12)), rows


@pytest.fixture(scope="module")
def published(history):
    model = build_model(history, TrainingConfig(horizon_steps=4, n_estimators=8, max_depth=6), 1000.0)
    blob = model.ensemble.to_npz()
    return blob, model.metadata.with_artifact(blob, "models/model.npz", "v1")


def test_every_tree_predicts_exactly_as_sklearn_on_real_and_random_rows(forest_and_rows):
    forest, rows = forest_and_rows
    ensemble = TreeEnsemble.from_npz(ensemble_from_forest(forest).to_npz(), len(FEATURE_NAMES))
    rng = np.random.default_rng(7)
    spread = np.nanstd(rows.features, axis=0) + 1e-3
    random_rows = rng.normal(size=(3000, len(FEATURE_NAMES))) * 2 * spread + np.nanmean(rows.features, axis=0)
    random_rows[rng.random(random_rows.shape) < 0.15] = np.nan  # missing values take sklearn's side
    # Rows exactly on thresholds: where float32 rounding decides the side.
    on_thresholds = np.tile(np.nanmean(rows.features, axis=0), (200, 1))
    tree = forest.estimators_[0].tree_
    split_nodes = np.flatnonzero(tree.children_left >= 0)[:200]
    on_thresholds[np.arange(len(split_nodes)), tree.feature[split_nodes]] = tree.threshold[split_nodes]
    for features in (rows.features, random_rows, on_thresholds):
        expected = np.stack([estimator.predict(features) for estimator in forest.estimators_], axis=1)
        assert np.array_equal(ensemble.predict_per_tree(features), expected)
    assert np.any(np.isnan(rows.features))  # the real rows do exercise the missing-value branch


def test_forecasts_come_from_the_arrays_that_are_published(published):
    blob, metadata = published
    served = load_verified(blob, metadata, BOUNDS)
    row = np.zeros((1, len(FEATURE_NAMES)))
    assert served.forecast_many(row, np.array([np.log1p(2000.0)]))[0] > 0
    assert served.ensemble.tree_count == 8
    assert served.ensemble.depth <= 6


def _arrays(blob: bytes) -> Arrays:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name].copy() for name in archive.files}


def _npz(arrays: dict[str, Any], allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=allow_pickle, **arrays)
    return buffer.getvalue()


def _first_split(arrays: Arrays) -> int:
    return int(np.flatnonzero(arrays["children_left"] >= 0)[0])


def _wrong_dtype(arrays: Arrays) -> None:
    arrays["threshold"] = arrays["threshold"].astype(np.float32)


def _child_out_of_range(arrays: Arrays) -> None:
    arrays["children_left"][_first_split(arrays)] = 10**6


def _cycle(arrays: Arrays) -> None:
    node = int(np.flatnonzero(arrays["children_left"] > 0)[1])
    arrays["children_right"][node] = 0  # back to the root


def _feature_out_of_range(arrays: Arrays) -> None:
    arrays["feature"][_first_split(arrays)] = len(FEATURE_NAMES)


def _nan_value(arrays: Arrays) -> None:
    arrays["value"][3] = np.nan


def _nan_threshold(arrays: Arrays) -> None:
    arrays["threshold"][_first_split(arrays)] = np.nan


def _one_child(arrays: Arrays) -> None:
    arrays["children_right"][_first_split(arrays)] = -1


def _missing_array(arrays: Arrays) -> None:
    del arrays["missing_go_to_left"]


def _short_array(arrays: Arrays) -> None:
    arrays["value"] = arrays["value"][:-1]


def _node_count_over(arrays: Arrays) -> None:
    arrays["node_count"][0] += 5


def _too_many_trees(arrays: Arrays) -> None:
    arrays["node_count"] = np.ones(501, dtype=np.int32)


@pytest.mark.parametrize(
    "forge",
    [
        _wrong_dtype,
        _child_out_of_range,
        _cycle,
        _feature_out_of_range,
        _nan_value,
        _nan_threshold,
        _one_child,
        _missing_array,
        _short_array,
        _node_count_over,
        _too_many_trees,
    ],
)
def test_malformed_arrays_are_an_integrity_error_never_an_index_error(published, forge):
    blob, metadata = published
    arrays = _arrays(blob)
    forge(arrays)
    forged = _npz(arrays)
    with pytest.raises(ModelIntegrityError, match="arrays"):
        load_verified(forged, metadata.with_artifact(forged, "models/model.npz"), BOUNDS)


class Exploit:
    """Unpickling this writes a file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_object_arrays_are_refused_unread(published, tmp_path):
    blob, metadata = published
    marker = tmp_path / "executed"
    arrays: dict[str, Any] = _arrays(blob)
    arrays["value"] = np.array([Exploit(marker)] * len(arrays["value"]), dtype=object)
    forged = _npz(arrays, allow_pickle=True)
    with pytest.raises(ModelIntegrityError, match="arrays"):
        load_verified(forged, metadata.with_artifact(forged, "models/model.npz"), BOUNDS)
    assert not marker.exists()


def test_a_pickle_and_its_digest_are_refused(published, tmp_path):
    _, metadata = published
    marker = tmp_path / "executed"
    forged = pickle.dumps(Exploit(marker))
    with pytest.raises(ModelIntegrityError, match="npz"):
        load_verified(forged, metadata.with_artifact(forged, "models/model.npz"), BOUNDS)
    assert not marker.exists()


def test_an_extra_member_is_refused(published):
    blob, metadata = published
    arrays = _arrays(blob)
    arrays["extra"] = np.zeros(3)
    forged = _npz(arrays)
    with pytest.raises(ModelIntegrityError, match="expected"):
        load_verified(forged, metadata.with_artifact(forged, "models/model.npz"), BOUNDS)


def test_a_format_1_manifest_is_refused_with_the_way_out(published):
    _, metadata = published
    old = json.loads(metadata.to_json())
    old["format_version"] = 1
    del old["training_demand_max_per_minute"]
    with pytest.raises(ModelCompatibilityError, match=r"format 1 \(joblib pickle\) is no longer loaded"):
        ModelMetadata.from_json(json.dumps(old))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity_per_instance", 0.001),
        ("capacity_per_instance", 4001.0),
        ("capacity_per_instance", float("nan")),
        ("capacity_per_instance", "1000"),
        ("capacity_per_instance", True),
        ("horizon_steps", 27),
        ("horizon_steps", 0),
        ("horizon_steps", 4.0),
        ("training_demand_max_per_minute", 0.0),
        ("training_demand_max_per_minute", float("inf")),
        ("timezone", "Mars/Olympus"),
        ("timezone", "../../etc/passwd"),
        ("model_key", "models/../state/x"),
        ("model_key", "/models/x"),
        ("model_key", "history/x"),
        ("model_version_id", 7),
        ("sha256", "ab" * 31),
        ("size_bytes", 60_000_000),
        ("library_versions", {"numpy": 2}),
        ("capacity_learned", 1),
        ("step_seconds", 60),
    ],
)
def test_each_bad_manifest_value_is_refused_naming_the_field(published, field, value):
    blob, metadata = published
    data = json.loads(metadata.to_json())
    data[field] = value
    with pytest.raises((ModelIntegrityError, ModelCompatibilityError), match=f"manifest field {field}"):
        load_verified(blob, ModelMetadata.from_json(json.dumps(data)), BOUNDS)


def test_capacity_bounds_come_from_the_setting_not_the_manifest(published):
    blob, metadata = published
    load_verified(blob, metadata, ServingBounds(3999.0))  # 1000 is within 3999 / 4
    with pytest.raises(ModelIntegrityError, match="capacity_per_instance"):
        load_verified(blob, metadata, ServingBounds(4001.0))
