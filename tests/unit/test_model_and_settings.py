"""Model artifact integrity (the arrays and the manifest checked before use). The settings
tests, at the exact bounds of every variable, are in test_settings.py."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.model import (
    ModelCompatibilityError,
    ModelIntegrityError,
    ModelMetadata,
    ServingBounds,
    load_verified,
)
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400
BOUNDS = ServingBounds(1000.0)


@pytest.fixture(scope="module")
def trained():
    model = build_model(
        synthetic_history(MONDAY, 9), TrainingConfig(horizon_steps=4, n_estimators=10), 1000.0
    )
    blob = model.ensemble.to_npz()
    return blob, model.metadata.with_artifact(blob, "models/model.npz", "v1")


class Exploit:
    """Unpickling this writes a file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_round_trip_loads_and_forecasts(trained):
    blob, metadata = trained
    model = load_verified(blob, metadata, BOUNDS)
    row = np.zeros(len(FEATURE_NAMES))
    forecast = model.forecast(row, np.log1p(2000.0), 0.9)
    assert forecast.demand_upper >= forecast.demand_mean > 0
    assert model.ensemble.tree_count == 10


def test_a_pickle_with_its_own_digest_is_never_unpickled(trained, tmp_path):
    _, metadata = trained
    marker = tmp_path / "executed"
    blob = pickle.dumps(Exploit(marker))
    with pytest.raises(ModelIntegrityError, match="npz"):
        load_verified(blob, metadata.with_artifact(blob, "models/model.npz"), BOUNDS)
    assert not marker.exists()


def test_tampered_bytes_are_refused(trained):
    blob, metadata = trained
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_verified(blob[:-1] + bytes([blob[-1] ^ 1]), metadata, BOUNDS)


def test_manifest_without_digest_is_refused(trained):
    blob, metadata = trained
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_verified(blob, dataclasses.replace(metadata, sha256=""), BOUNDS)


def test_other_features_are_incompatible(trained):
    blob, metadata = trained
    with pytest.raises(ModelCompatibilityError, match="feature_names"):
        load_verified(blob, dataclasses.replace(metadata, feature_names=(*FEATURE_NAMES, "extra")), BOUNDS)


def test_other_library_versions_still_serve(trained):
    """The arrays are read and traversed by this code: the sklearn that trained them no
    longer has to match the running one (it is recorded for the operator)."""
    blob, metadata = trained
    versions = {**metadata.library_versions, "scikit-learn": "1.5.0"}
    load_verified(blob, dataclasses.replace(metadata, library_versions=versions), BOUNDS)


def test_metadata_json_round_trip(trained):
    _, metadata = trained
    assert ModelMetadata.from_json(metadata.to_json()) == metadata
    assert metadata.training_demand_max_per_minute > 0
    with pytest.raises(ModelIntegrityError):
        ModelMetadata.from_json(b"{not json")


def test_compressed_model_is_bounded(trained):
    blob, _ = trained
    assert len(blob) < 10 * 1024 * 1024
