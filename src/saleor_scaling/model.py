"""Model artifact: a Random Forest plus the metadata that makes it safe to serve.

The registry is a manifest (JSON) that names one version of the model object and holds
its sha256, feature list, horizon, per-instance capacity and library versions. Serving
checks all of these **before** unpickling: a pickle runs code on load, so bytes that do
not match the manifest are never handed to joblib.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import joblib
import numpy as np
import scipy
import sklearn
from sklearn.ensemble import RandomForestRegressor

from saleor_scaling import STEP_SECONDS
from saleor_scaling.features import FEATURE_NAMES, demand_from_log_ratio
from saleor_scaling.headroom import HeadroomError, HeadroomTable
from saleor_scaling.series import FloatArray

FORMAT_VERSION = 1
PER_TREE_QUANTILE = "per-tree quantile"


class ModelError(Exception):
    """The model cannot be served; predict falls back to a no-op."""


class ModelNotFoundError(ModelError):
    pass


class ModelIntegrityError(ModelError):
    """The bytes do not match the manifest's sha256, or the manifest is unreadable."""


class ModelCompatibilityError(ModelError):
    """The model was built for other features, another step or other library versions."""


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


@dataclass(frozen=True)
class ModelMetadata:
    feature_names: tuple[str, ...]
    horizon_steps: int
    timezone: str
    capacity_per_instance: float
    trained_at: str
    training_start: str
    training_end: str
    rows: int
    sha256: str = ""
    size_bytes: int = 0
    model_key: str = ""
    model_version_id: str = ""
    capacity_learned: bool = False
    scores: dict[str, float] = field(default_factory=dict)
    headroom: dict[str, Any] = field(default_factory=dict)
    """`HeadroomTable.to_json()` measured on the held-out days; empty: size for the
    per-tree quantile (a model trained before the table existed, or on too few rows)."""
    library_versions: dict[str, str] = field(default_factory=library_versions)
    training_demand_max_per_minute: float = 0.0
    step_seconds: int = STEP_SECONDS
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelMetadata:
        try:
            data = json.loads(text)
            data["feature_names"] = tuple(data["feature_names"])
            return cls(**data)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelIntegrityError(f"model manifest is not valid: {error}") from error

    def with_artifact(self, blob: bytes, model_key: str, version_id: str = "") -> ModelMetadata:
        return replace(
            self,
            sha256=hashlib.sha256(blob).hexdigest(),
            size_bytes=len(blob),
            model_key=model_key,
            model_version_id=version_id,
        )


@dataclass(frozen=True)
class Forecast:
    """Demand forecast for the target step, in requests per minute."""

    demand_mean: float
    demand_upper: float
    """What capacity is sized for: the mean sized up by the headroom."""
    quantile: float
    tree_spread: float
    """Interquartile range of per-tree forecasts, relative to the mean: how much the
    trees disagree (a cheap uncertainty signal for the decision log)."""
    headroom_basis: str = PER_TREE_QUANTILE
    """Where the headroom comes from: the held-out busiest minute (`headroom.Basis`) or,
    for a model without a headroom table, the per-tree quantile."""

    @property
    def headroom(self) -> float:
        """demand_upper / demand_mean: how far above the mean capacity is sized."""
        return self.demand_upper / self.demand_mean if self.demand_mean > 0 else 1.0


@dataclass
class ForecastModel:
    forest: RandomForestRegressor
    metadata: ModelMetadata
    headroom: HeadroomTable | None = field(init=False)

    def __post_init__(self) -> None:
        table = self.metadata.headroom
        try:
            self.headroom = HeadroomTable.from_json(table) if table else None
        except HeadroomError as error:
            raise ModelIntegrityError(str(error)) from error

    def forecast(self, features: FloatArray, log_level: float, quantile: float) -> Forecast:
        """Forecast for one feature row whose current log level is `log_level`."""
        row = np.asarray(features, dtype=np.float64).reshape(1, -1)
        return self.forecast_rows(row, np.array([log_level]), quantile)[0]

    def forecast_rows(self, features: FloatArray, log_levels: FloatArray, quantile: float) -> list[Forecast]:
        """One forecast per row, as `forecast` would give it: the predict path and the
        backtest share this code, only batched differently. Capacity is sized for the
        mean times the headroom table's ratio at `quantile`, or, without a table, for the
        `quantile` of the per-tree forecasts."""
        demand_per_tree = self._demand_per_tree(features, log_levels)
        means = np.mean(demand_per_tree, axis=1)
        q25, q75 = np.quantile(demand_per_tree, [0.25, 0.75], axis=1)
        if self.headroom is not None:
            uppers = means * self.headroom.multipliers(means, quantile)
            basis = self.headroom.basis
        else:
            uppers = np.maximum(np.quantile(demand_per_tree, quantile, axis=1), means)
            basis = PER_TREE_QUANTILE
        forecasts = []
        for mean, upper, low, high in zip(means, uppers, q25, q75, strict=True):
            spread = float((high - low) / mean) if mean > 0 else 0.0
            forecasts.append(Forecast(float(mean), float(upper), quantile, spread, basis))
        return forecasts

    def forecast_many(self, features: FloatArray, log_levels: FloatArray) -> FloatArray:
        """Mean demand forecast for many rows (training evaluation): the `demand_mean` of
        `forecast_rows`, so what is judged and calibrated is what predict serves."""
        means: FloatArray = np.mean(self._demand_per_tree(features, log_levels), axis=1)
        return means

    def _demand_per_tree(self, features: FloatArray, log_levels: FloatArray) -> FloatArray:
        levels = np.asarray(log_levels, dtype=np.float64)
        rows = np.asarray(features, dtype=np.float64).reshape(len(levels), -1)
        per_tree = np.stack([tree.predict(rows) for tree in self.forest.estimators_], axis=1)
        return demand_from_log_ratio(levels[:, None], per_tree)


def serialize_forest(forest: RandomForestRegressor) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(forest, buffer, compress=("zlib", 3))
    return buffer.getvalue()


def check_compatible(metadata: ModelMetadata) -> None:
    """Raise ModelCompatibilityError unless this code can serve the model."""
    if metadata.format_version != FORMAT_VERSION:
        raise ModelCompatibilityError(f"manifest format {metadata.format_version} != {FORMAT_VERSION}")
    if tuple(metadata.feature_names) != FEATURE_NAMES:
        raise ModelCompatibilityError(
            "model features differ from this code's: retrain with the deployed version"
        )
    if metadata.step_seconds != STEP_SECONDS:
        raise ModelCompatibilityError(f"model step {metadata.step_seconds}s != {STEP_SECONDS}s")
    if metadata.horizon_steps < 1:
        raise ModelCompatibilityError(f"horizon {metadata.horizon_steps} must be >= 1")
    running = library_versions()
    for library in ("scikit-learn", "numpy"):
        built = metadata.library_versions.get(library, "")
        if _major_minor(built) != _major_minor(running[library]):
            raise ModelCompatibilityError(
                f"model built with {library} {built or '?'}, running {running[library]}"
            )


def load_verified(blob: bytes, metadata: ModelMetadata) -> ForecastModel:
    """Verify digest, size and compatibility, then unpickle."""
    digest = hashlib.sha256(blob).hexdigest()
    if not metadata.sha256 or digest != metadata.sha256:
        raise ModelIntegrityError(
            f"model sha256 {digest[:12]}… does not match manifest {metadata.sha256[:12] or 'none'}…"
        )
    check_compatible(metadata)
    try:
        forest = joblib.load(io.BytesIO(blob))
    except Exception as error:  # joblib raises many types on bad pickles
        raise ModelIntegrityError(f"model could not be loaded: {error}") from error
    if not isinstance(forest, RandomForestRegressor):
        raise ModelIntegrityError(f"model is a {type(forest).__name__}, not a RandomForestRegressor")
    if getattr(forest, "n_features_in_", None) != len(FEATURE_NAMES):
        raise ModelCompatibilityError("model expects a different number of features")
    # A one-row prediction with a process pool costs 11 ms instead of 3 ms.
    forest.set_params(n_jobs=1)
    return ForecastModel(forest=forest, metadata=metadata)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def manifest_summary(metadata: ModelMetadata) -> dict[str, Any]:
    """The fields worth a log line."""
    return {
        "model_version_id": metadata.model_version_id,
        "trained_at": metadata.trained_at,
        "horizon_steps": metadata.horizon_steps,
        "capacity_per_instance": metadata.capacity_per_instance,
        "rows": metadata.rows,
        "training_end": metadata.training_end,
        "size_bytes": metadata.size_bytes,
        "sha256": metadata.sha256[:12],
        "headroom_basis": metadata.headroom.get("basis", PER_TREE_QUANTILE),
    }
