"""Model artifact: a forest of plain arrays plus the metadata that makes it safe to serve.

The registry is a manifest (JSON) that names one version of the model object and holds
its sha256, feature list, horizon, per-instance capacity and library versions. Whoever
can write the bucket can write both, so neither is trusted: the model object is an `.npz`
of numeric arrays (`ensemble`, never a pickle: loading it cannot run code), and every
manifest field is checked for type and range before anything is fetched or served
(`ModelMetadata.from_json`, `validate_for_serving`). The bounds come from this code and
the deployment's settings, never from the manifest. Sizes and nesting are bounded before
anything is parsed (`bounded`), and any exception while a manifest or model is read,
whatever its type, is a ModelError: a forged or corrupt object makes predict fall back
and retrain publish a replacement, never crash either of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.bounded import parse_json
from saleor_scaling.ensemble import EnsembleError, TreeEnsemble
from saleor_scaling.features import FEATURE_NAMES, demand_from_log_ratio
from saleor_scaling.headroom import FACTORS_KEY, MAX_BANDS, Condition, HeadroomError, HeadroomTable
from saleor_scaling.labels import capacity_bounds
from saleor_scaling.series import FloatArray
from saleor_scaling.settings import horizon_steps_for

FORMAT_VERSION = 2
DAILY_STAGE = "daily"
"""Trained on fewer days than MIN_HISTORY_DAYS (at least `retrain_service.MIN_DAILY_HISTORY_DAYS`):
the daily pattern and the recent trajectory only, judged against the same time yesterday."""
FULL_STAGE = "full"
"""Trained on at least MIN_HISTORY_DAYS: the weekly pattern too, judged against last week."""
MODEL_STAGES = (DAILY_STAGE, FULL_STAGE)
OPTIONAL_MANIFEST_FIELDS = frozenset({"stage", "tuning"})
"""Fields added to format 2 after models were published: absent, they take their default."""
"""1: a joblib pickle (refused: loading it runs whatever code it names). 2: `.npz` arrays."""
PER_TREE_QUANTILE = "per-tree quantile"
MODEL_PREFIX = "models/"
"""The only prefix a manifest may point into: predict writes `state/`, the nightly job
`history/`, and neither may be read back as a model."""
MAX_MODEL_BYTES = 50_000_000
"""Five times MAX_MODEL_MEGABYTES' default; a bigger object is refused before hashing."""
MAX_HORIZON_STEPS = horizon_steps_for(120)
"""The horizon of the longest lead time the settings allow (LEAD_TIME_MINUTES <= 120):
predict reads history for the horizon, so an unbounded one would read months of objects."""
MAX_TEXT_LENGTH = 256
MAX_MANIFEST_BYTES = 1 << 16
"""The largest manifest read (64 KiB). What `to_json` writes is about 6 KB at most: twenty
fields, and a headroom table of at most MAX_BANDS bands of 50 factors, one per indented
line of under 20 characters (4 x 50 x 20 = 4 KB). Ten times that leaves room for fields
added later; anything larger is not a manifest this code wrote and is refused before
it is parsed (a 150 MiB manifest used to be read whole, then parsed)."""
MAX_MAP_ENTRIES = 32
"""`scores` holds 8 entries and `library_versions` 4; a map this large is not ours."""


class ModelError(Exception):
    """The model cannot be served; predict falls back to a no-op."""


class ModelNotFoundError(ModelError):
    pass


class ModelIntegrityError(ModelError):
    """The bytes do not match the manifest, or the manifest or arrays are malformed or
    out of bounds."""


class ModelCompatibilityError(ModelError):
    """The model was built for another format, other features or another step."""


def library_versions() -> dict[str, str]:
    """Recorded for the operator; serving no longer depends on them (the arrays are ours)."""
    import scipy  # training imports these anyway; predict never calls this
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


@dataclass(frozen=True)
class ServingBounds:
    """What this deployment accepts from a manifest, from its own settings."""

    capacity_per_instance: float
    """The CAPACITY_PER_INSTANCE setting: a model's learned capacity must lie within the
    bounds retraining clamps to around it (`labels.capacity_bounds`)."""


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
    training_demand_max_per_minute: float
    """The 99.9th percentile of the clean demand per minute the model was trained on (the
    name is from when it was the maximum): the basis of predict's sanity ceiling, which
    one glitch datapoint cannot move (`training.demand_ceiling_basis`)."""
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
    step_seconds: int = STEP_SECONDS
    format_version: int = FORMAT_VERSION
    stage: str = FULL_STAGE
    """How much history the model grew from (`MODEL_STAGES`): a manifest written before
    stages existed has no such field and was a full model."""
    tuning: dict[str, Any] = field(default_factory=dict)
    """The HeadroomQuantile the nightly replay chose for the shortfall goal
    (`shortfall_goal.TunedSetting`); empty: none. Never checked here, never a reason to
    refuse the model: predict trusts it only whole and within its own bounds
    (`shortfall_goal.tuned_setting`), and otherwise sizes for HeadroomQuantile as set."""

    def to_json(self) -> str:
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelMetadata:
        """Parse and check every field that needs no setting (`check_manifest`): a
        manifest that names a key outside models/ is refused before anything is fetched.
        Every failure, whatever raised it, is a ModelError."""
        try:
            return cls._from_json(text)
        except ModelError:
            raise
        except Exception as error:  # MemoryError, RecursionError, TypeError: all a bad manifest
            raise ModelIntegrityError(
                f"model manifest is unreadable: {type(error).__name__}: {error}"
            ) from error

    @classmethod
    def _from_json(cls, text: str | bytes) -> ModelMetadata:
        try:
            data = parse_json(text, MAX_MANIFEST_BYTES, "model manifest")
        except ValueError as error:
            raise ModelIntegrityError(f"model manifest is not JSON within bounds: {error}") from error
        if not isinstance(data, dict):
            raise ModelIntegrityError("model manifest is not a JSON object")
        _check_format_version(data.get("format_version"))
        names = {spec.name for spec in fields(cls)}
        missing = sorted(names - data.keys() - OPTIONAL_MANIFEST_FIELDS)
        unknown = sorted(data.keys() - names)
        if missing:
            raise ModelIntegrityError(f"manifest field {missing[0]} is missing")
        if unknown:
            raise ModelIntegrityError(f"manifest field {unknown[0]} is not part of format {FORMAT_VERSION}")
        if not isinstance(data["feature_names"], list):
            raise ModelIntegrityError("manifest field feature_names must be a list")
        data["feature_names"] = tuple(data["feature_names"])
        for name in ("capacity_per_instance", "training_demand_max_per_minute"):
            if _is_number(data[name]):
                data[name] = float(data[name])
        metadata = cls(**data)
        check_manifest(metadata)
        return metadata

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
    ensemble: TreeEnsemble
    metadata: ModelMetadata
    headroom: HeadroomTable | None = field(init=False)

    def __post_init__(self) -> None:
        table = self.metadata.headroom
        try:
            self.headroom = HeadroomTable.from_json(table) if table else None
        except HeadroomError as error:
            raise ModelIntegrityError(f"manifest field headroom: {error}") from error

    def forecast(
        self, features: FloatArray, log_level: float, quantile: float, burstiness: float = math.nan
    ) -> Forecast:
        """Forecast for one feature row whose current log level is `log_level` and recent
        burstiness `burstiness` (`headroom.recent_burstiness`, read only by a table
        scaled by it)."""
        row = np.asarray(features, dtype=np.float64).reshape(1, -1)
        return self.forecast_rows(row, np.array([log_level]), quantile, np.array([burstiness]))[0]

    def forecast_rows(
        self,
        features: FloatArray,
        log_levels: FloatArray,
        quantile: float,
        burstiness: FloatArray | None = None,
    ) -> list[Forecast]:
        """One forecast per row, as `forecast` would give it: the predict path and the
        backtest share this code, only batched differently. Capacity is sized for the
        mean times the headroom table's ratio at `quantile` (and each row's `burstiness`
        where the table is scaled by it), or, without a table, for the `quantile` of the
        per-tree forecasts."""
        demand_per_tree = self._demand_per_tree(features, log_levels)
        means = np.mean(demand_per_tree, axis=1)
        q25, q75 = np.quantile(demand_per_tree, [0.25, 0.75], axis=1)
        if self.headroom is not None:
            uppers = means * self.headroom.multipliers(means, quantile, burstiness)
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
        per_tree = self.ensemble.predict_per_tree(rows)
        return demand_from_log_ratio(levels[:, None], per_tree)


def _check_format_version(version: object) -> None:
    if version == 1 and not isinstance(version, bool):
        raise ModelCompatibilityError(
            "model format 1 (joblib pickle) is no longer loaded; the nightly retrain publishes "
            "a format-2 model; predict is in fallback until then"
        )
    if not _is_int(version) or version != FORMAT_VERSION:
        raise ModelCompatibilityError(f"manifest field format_version {version!r} != {FORMAT_VERSION}")


def check_manifest(metadata: ModelMetadata) -> None:
    """Every check that needs no setting; raises ModelError naming the field. Types are
    checked as strictly as JSON allows (a bool is not an int, "1000" is not a number)."""
    _check_format_version(metadata.format_version)
    names = metadata.feature_names
    if not isinstance(names, tuple) or not all(isinstance(name, str) for name in names):
        raise ModelIntegrityError("manifest field feature_names must be a list of strings")
    if names != FEATURE_NAMES:
        raise ModelCompatibilityError(
            "manifest field feature_names differs from this code's: retrain with the deployed version"
        )
    if not _is_int(metadata.step_seconds) or metadata.step_seconds != STEP_SECONDS:
        raise ModelCompatibilityError(
            f"manifest field step_seconds {metadata.step_seconds!r} != {STEP_SECONDS}"
        )
    if not _is_int(metadata.horizon_steps) or not 1 <= metadata.horizon_steps <= MAX_HORIZON_STEPS:
        raise ModelIntegrityError(
            f"manifest field horizon_steps {metadata.horizon_steps!r} must be an int "
            f"in [1, {MAX_HORIZON_STEPS}]"
        )
    capacity = metadata.capacity_per_instance
    if not _is_number(capacity) or not math.isfinite(capacity) or capacity <= 0:
        raise ModelIntegrityError(f"manifest field capacity_per_instance {capacity!r} must be a number > 0")
    demand_max = metadata.training_demand_max_per_minute
    if not _is_number(demand_max) or not math.isfinite(demand_max) or demand_max <= 0:
        raise ModelIntegrityError(
            f"manifest field training_demand_max_per_minute {demand_max!r} must be a finite number > 0"
        )
    _check_timezone(metadata.timezone)
    _check_model_key(metadata.model_key)
    for name in ("model_version_id", "trained_at", "training_start", "training_end"):
        _check_text(name, getattr(metadata, name))
    if not isinstance(metadata.sha256, str) or len(metadata.sha256) != 64 or not _is_hex(metadata.sha256):
        raise ModelIntegrityError("manifest field sha256 must be 64 lowercase hex characters")
    size = metadata.size_bytes
    if not _is_int(size) or not 0 < size <= MAX_MODEL_BYTES:
        raise ModelIntegrityError(
            f"manifest field size_bytes {size!r} must be an int in [1, {MAX_MODEL_BYTES}]"
        )
    if not _is_int(metadata.rows) or metadata.rows < 1:
        raise ModelIntegrityError(f"manifest field rows {metadata.rows!r} must be an int >= 1")
    if not isinstance(metadata.capacity_learned, bool):
        raise ModelIntegrityError("manifest field capacity_learned must be true or false")
    _check_mapping("scores", metadata.scores, _is_number)
    _check_mapping(
        "library_versions",
        metadata.library_versions,
        lambda value: isinstance(value, str) and len(value) <= MAX_TEXT_LENGTH,
    )
    _check_headroom(metadata.headroom)
    if not isinstance(metadata.stage, str) or metadata.stage not in MODEL_STAGES:
        raise ModelIntegrityError(
            f"manifest field stage {metadata.stage!r} must be one of {list(MODEL_STAGES)}"
        )


def validate_for_serving(metadata: ModelMetadata, expected: ServingBounds) -> None:
    """`check_manifest` plus the bounds that come from this deployment's settings."""
    check_manifest(metadata)
    low, high = capacity_bounds(expected.capacity_per_instance)
    if not low <= metadata.capacity_per_instance <= high:
        raise ModelIntegrityError(
            f"manifest field capacity_per_instance {metadata.capacity_per_instance:g} is outside "
            f"[{low:g}, {high:g}] (CAPACITY_PER_INSTANCE {expected.capacity_per_instance:g} / and x 4)"
        )


def load_verified(blob: bytes, metadata: ModelMetadata, expected: ServingBounds) -> ForecastModel:
    """Validate the manifest, then size and digest, then read and check the arrays. Nothing
    here can run code: the arrays are read as raw numbers, never unpickled. Every failure,
    whatever raised it (a MemoryError included), is a ModelError."""
    try:
        return _load_verified(blob, metadata, expected)
    except ModelError:
        raise
    except Exception as error:
        raise ModelIntegrityError(f"model cannot be loaded: {type(error).__name__}: {error}") from error


def _load_verified(blob: bytes, metadata: ModelMetadata, expected: ServingBounds) -> ForecastModel:
    validate_for_serving(metadata, expected)
    if len(blob) != metadata.size_bytes:
        raise ModelIntegrityError(
            f"model is {len(blob)} bytes, manifest field size_bytes says {metadata.size_bytes}"
        )
    digest = hashlib.sha256(blob).hexdigest()
    if digest != metadata.sha256:
        raise ModelIntegrityError(
            f"model sha256 {digest[:12]}… does not match manifest field sha256 {metadata.sha256[:12]}…"
        )
    try:
        ensemble = TreeEnsemble.from_npz(blob, len(FEATURE_NAMES))
    except EnsembleError as error:
        raise ModelIntegrityError(f"model arrays are not a servable forest: {error}") from error
    return ForecastModel(ensemble=ensemble, metadata=metadata)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise ModelIntegrityError(
            f"manifest field {name} must be a string of at most {MAX_TEXT_LENGTH} characters"
        )


def _check_timezone(name: object) -> None:
    _check_text("timezone", name)
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ModelIntegrityError(f"manifest field timezone {name!r} is not an IANA time zone") from error


def _check_model_key(key: object) -> None:
    _check_text("model_key", key)
    text = str(key)
    parts = text.split("/")
    if not text.startswith(MODEL_PREFIX) or text.startswith("/") or ".." in parts or "" in parts[1:]:
        raise ModelIntegrityError(
            f"manifest field model_key {text!r} must name an object under {MODEL_PREFIX}"
        )
    if any(not character.isprintable() or character == "\\" for character in text):
        raise ModelIntegrityError(f"manifest field model_key {text!r} holds a control character or backslash")


def _check_mapping(name: str, value: object, accept: Any) -> None:
    if not isinstance(value, Mapping) or len(value) > MAX_MAP_ENTRIES:
        raise ModelIntegrityError(
            f"manifest field {name} must be an object of at most {MAX_MAP_ENTRIES} entries"
        )
    if not all(
        isinstance(key, str) and len(key) <= MAX_TEXT_LENGTH and accept(item) for key, item in value.items()
    ):
        raise ModelIntegrityError(
            f"manifest field {name} must map strings of at most {MAX_TEXT_LENGTH} characters "
            "to the expected type"
        )


def _check_headroom(table: object) -> None:
    if not isinstance(table, Mapping):
        raise ModelIntegrityError("manifest field headroom must be an object")
    if not table:
        return
    scaled_by = table.get("scaled_by", Condition.NONE)
    edges = table.get("band_edges")
    factors = table.get(FACTORS_KEY.get(scaled_by, "factors") if isinstance(scaled_by, str) else "factors")
    if isinstance(factors, list) and len(factors) > MAX_BANDS:
        # The nightly job fits at most MAX_BANDS; each band more is 50 numbers to check.
        raise ModelIntegrityError(
            f"manifest field headroom holds {len(factors)} bands, at most {MAX_BANDS} bands are fitted"
        )
    if (
        not isinstance(table.get("basis"), str)
        or not isinstance(table.get("scaled_by", ""), str)
        or not _is_int(table.get("rows"))
        or not isinstance(edges, list)
        or not all(_is_number(edge) for edge in edges)
        or not isinstance(factors, list)
        or not all(isinstance(band, list) and all(_is_number(value) for value in band) for band in factors)
    ):
        raise ModelIntegrityError(
            "manifest field headroom must hold a basis string, rows, band_edges and factors as "
            "numbers (and scaled_by, if any, a string)"
        )
    try:
        HeadroomTable.from_json(table)
    except HeadroomError as error:
        raise ModelIntegrityError(f"manifest field headroom: {error}") from error


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
        "stage": metadata.stage,
    }
