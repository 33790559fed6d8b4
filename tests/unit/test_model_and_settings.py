"""Model artifact integrity (checked before unpickling) and settings validation."""

from __future__ import annotations

import dataclasses
import io
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest

from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.model import (
    ModelCompatibilityError,
    ModelIntegrityError,
    ModelMetadata,
    load_verified,
    serialize_forest,
)
from saleor_scaling.settings import ConfigurationError, PredictSettings, ScalingMode
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400


@pytest.fixture(scope="module")
def trained():
    model = build_model(
        synthetic_history(MONDAY, 9), TrainingConfig(horizon_steps=4, n_estimators=10), 1000.0
    )
    blob = serialize_forest(model.forest)
    return blob, model.metadata.with_artifact(blob, "models/model.joblib", "v1")


class Exploit:
    """Unpickling this writes a file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_round_trip_loads_and_forecasts(trained):
    blob, metadata = trained
    model = load_verified(blob, metadata)
    row = np.zeros(len(FEATURE_NAMES))
    forecast = model.forecast(row, np.log1p(2000.0), 0.9)
    assert forecast.demand_upper >= forecast.demand_mean > 0
    assert model.forest.n_jobs == 1


def test_tampered_bytes_are_never_unpickled(trained, tmp_path):
    _, metadata = trained
    marker = tmp_path / "executed"
    buffer = io.BytesIO()
    joblib.dump(Exploit(marker), buffer)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_verified(buffer.getvalue(), metadata)
    assert not marker.exists()


def test_manifest_without_digest_is_refused(trained):
    blob, metadata = trained
    with pytest.raises(ModelIntegrityError):
        load_verified(blob, dataclasses.replace(metadata, sha256=""))


def test_other_features_are_incompatible(trained):
    blob, metadata = trained
    with pytest.raises(ModelCompatibilityError, match="features"):
        load_verified(blob, dataclasses.replace(metadata, feature_names=(*FEATURE_NAMES, "extra")))


def test_other_library_versions_are_incompatible(trained):
    blob, metadata = trained
    versions = {**metadata.library_versions, "scikit-learn": "1.5.0"}
    with pytest.raises(ModelCompatibilityError, match=r"scikit-learn 1\.5\.0"):
        load_verified(blob, dataclasses.replace(metadata, library_versions=versions))


def test_a_verified_pickle_of_the_wrong_type_is_refused(trained):
    _, metadata = trained
    blob = pickle.dumps({"not": "a forest"})
    with pytest.raises(ModelIntegrityError, match="RandomForestRegressor"):
        load_verified(blob, metadata.with_artifact(blob, "k"))


def test_metadata_json_round_trip(trained):
    _, metadata = trained
    assert ModelMetadata.from_json(metadata.to_json()) == metadata
    with pytest.raises(ModelIntegrityError):
        ModelMetadata.from_json(b"{not json")


def test_compressed_model_is_bounded(trained):
    blob, _ = trained
    assert len(blob) < 10 * 1024 * 1024


BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}


def test_settings_defaults_are_safe():
    settings = PredictSettings.from_env(BASE_ENV)
    assert settings.policy.mode is ScalingMode.FORECAST_ONLY
    assert settings.state_key == "state/shop/predict-state.json"
    assert settings.history_prefix == "history/shop"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"AUTO_SCALING_GROUP_NAME": ""}, "AUTO_SCALING_GROUP_NAME is required"),
        ({"SCALING_MODE": "yolo"}, "SCALING_MODE"),
        ({"HEADROOM_QUANTILE": "1.5"}, "HEADROOM_QUANTILE"),
        ({"HEADROOM_QUANTILE": "high"}, "not a number"),
        ({"MAX_SCALE_IN_STEP": "-1"}, "MAX_SCALE_IN_STEP"),
        ({"SHOP_TIMEZONE": "Mars/Olympus"}, "IANA"),
        ({"CAPACITY_PER_INSTANCE": "0"}, "CAPACITY_PER_INSTANCE"),
    ],
)
def test_bad_settings_fail_with_the_variable_named(override, message):
    with pytest.raises(ConfigurationError, match=message):
        PredictSettings.from_env({**BASE_ENV, **override})
