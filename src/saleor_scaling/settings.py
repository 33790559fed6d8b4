"""Configuration read once from environment variables into typed, validated objects.

Every variable and its default is documented beside the function's environment in
`template.yaml`; a bad value fails the cold start with a message that names it.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from saleor_scaling import STEP_SECONDS


class ConfigurationError(ValueError):
    """An environment variable is missing or holds a value we cannot use."""


class ScalingMode(enum.StrEnum):
    """What the predict function may do, as AWS predictive scaling offers it."""

    FORECAST_ONLY = "forecast-only"
    FORECAST_AND_SCALE = "forecast-and-scale"


DEFAULT_HEADROOM_QUANTILE = 0.6
"""Chosen on the backtest of the shared traces (docs/backtest.md): whole instances and the
scale-in window add their own margin, and at 0.6 NASA 1995 keeps under-provisioned minutes
at a seventh of reactive scaling's for 1.10x the oracle's instance-hours."""


@dataclass(frozen=True)
class PolicySettings:
    """Knobs of the capacity policy (see `policy.decide`)."""

    mode: ScalingMode = ScalingMode.FORECAST_ONLY
    headroom_quantile: float = DEFAULT_HEADROOM_QUANTILE
    """Capacity is sized for the forecast times the factor the target step's busiest minute
    stayed within in this share of the model's held-out steps (`headroom`), before
    rounding up to whole instances."""
    max_scale_in_step: int = 1
    """At most this many instances removed per run: scale in gradually."""
    scale_in_stabilization_minutes: int = 30
    """Scale in only to the highest recommendation of this trailing window."""
    target_cpu_percent: float = 70.0
    """The reactive policy's CPU target: the floor is what the current CPU needs at it."""

    def __post_init__(self) -> None:
        if not 0.5 <= self.headroom_quantile <= 0.99:
            raise ConfigurationError("HEADROOM_QUANTILE must be in [0.5, 0.99]")
        if self.max_scale_in_step < 0:
            raise ConfigurationError("MAX_SCALE_IN_STEP must be >= 0")
        if not 0 <= self.scale_in_stabilization_minutes <= 24 * 60:
            raise ConfigurationError("SCALE_IN_STABILIZATION_MINUTES must be in [0, 1440]")
        if not 10.0 <= self.target_cpu_percent <= 95.0:
            raise ConfigurationError("TARGET_CPU_PERCENT must be in [10, 95]")


@dataclass(frozen=True)
class ModelLocation:
    """Where the model registry lives: a manifest that points at one model version."""

    bucket: str
    manifest_key: str = "models/manifest.json"
    model_key: str = "models/model.npz"


@dataclass(frozen=True)
class ShopSettings:
    """What both functions need to know about the shop they serve."""

    auto_scaling_group_name: str
    load_balancer_full_name: str
    model: ModelLocation
    timezone: str = "UTC"
    capacity_per_instance: float = 1000.0
    """Requests per minute one instance serves at the target utilisation; retraining learns
    it from history where it can, and the model's metadata carries what it learned."""
    target_cpu_percent: float = 70.0
    topic_arn: str = ""
    history_prefix: str = ""

    def __post_init__(self) -> None:
        _check_timezone(self.timezone)
        if not self.history_prefix:
            object.__setattr__(self, "history_prefix", f"history/{self.auto_scaling_group_name}")
        if self.capacity_per_instance <= 0:
            raise ConfigurationError("CAPACITY_PER_INSTANCE must be > 0")

    @staticmethod
    def shop_fields(values: Mapping[str, str]) -> dict[str, Any]:
        return {
            "auto_scaling_group_name": _required(values, "AUTO_SCALING_GROUP_NAME"),
            "load_balancer_full_name": _required(values, "LOAD_BALANCER_FULL_NAME"),
            "model": _model_location(values),
            "timezone": values.get("SHOP_TIMEZONE", "UTC"),
            "capacity_per_instance": _float(values, "CAPACITY_PER_INSTANCE", 1000.0),
            "target_cpu_percent": _float(values, "TARGET_CPU_PERCENT", 70.0),
            "topic_arn": values.get("NOTIFICATION_TOPIC_ARN", ""),
            "history_prefix": values.get("HISTORY_PREFIX", ""),
        }


@dataclass(frozen=True)
class PredictSettings(ShopSettings):
    policy: PolicySettings = field(default_factory=PolicySettings)
    state_key: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.state_key:
            object.__setattr__(self, "state_key", f"state/{self.auto_scaling_group_name}/predict-state.json")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PredictSettings:
        values = os.environ if env is None else env
        shop = cls.shop_fields(values)
        return cls(
            **shop,
            policy=PolicySettings(
                mode=_mode(values.get("SCALING_MODE", ScalingMode.FORECAST_ONLY.value)),
                headroom_quantile=_float(values, "HEADROOM_QUANTILE", DEFAULT_HEADROOM_QUANTILE),
                max_scale_in_step=_int(values, "MAX_SCALE_IN_STEP", 1),
                scale_in_stabilization_minutes=_int(values, "SCALE_IN_STABILIZATION_MINUTES", 30),
                target_cpu_percent=shop["target_cpu_percent"],
            ),
            state_key=values.get("STATE_KEY", ""),
        )


ANCHOR_OFFSET_STEPS = 2
"""The newest bucket a run trusts closed one full step before the run: CloudWatch may
still be filling the bucket that just closed, and a half-filled bucket reads as a drop."""


def horizon_steps_for(lead_time_minutes: int) -> int:
    """Steps from the anchor bucket to the bucket capacity is sized for: the anchor's age
    plus the lead time new instances need to boot and warm up."""
    return ANCHOR_OFFSET_STEPS + max(1, math.ceil(lead_time_minutes * 60 / STEP_SECONDS))


@dataclass(frozen=True)
class RetrainSettings(ShopSettings):
    """The nightly job's configuration (defaults documented in template.yaml)."""

    training_window_days: int = 28
    holdout_days: int = 2
    min_history_days: int = 9
    """Refuse to train on less: a week for the weekly features, plus the held-out tail."""
    lead_time_minutes: int = 10
    n_estimators: int = 60
    max_depth: int = 12
    promotion_tolerance: float = 0.02
    """A challenger is 'not worse' when its error is within this share of the champion's."""
    max_model_megabytes: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.holdout_days < self.min_history_days <= self.training_window_days <= 365:
            raise ConfigurationError(
                "need 1 <= HOLDOUT_DAYS < MIN_HISTORY_DAYS <= TRAINING_WINDOW_DAYS <= 365"
            )
        if not 1 <= self.lead_time_minutes <= 120:
            raise ConfigurationError("LEAD_TIME_MINUTES must be in [1, 120]")
        if not 10 <= self.n_estimators <= 500 or not 4 <= self.max_depth <= 20:
            raise ConfigurationError("N_ESTIMATORS must be in [10, 500] and MAX_DEPTH in [4, 20]")
        if not 0 <= self.promotion_tolerance <= 0.5:
            raise ConfigurationError("PROMOTION_TOLERANCE must be in [0, 0.5]")

    @property
    def horizon_steps(self) -> int:
        return horizon_steps_for(self.lead_time_minutes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainSettings:
        values = os.environ if env is None else env
        return cls(
            **cls.shop_fields(values),
            training_window_days=_int(values, "TRAINING_WINDOW_DAYS", 28),
            holdout_days=_int(values, "HOLDOUT_DAYS", 2),
            min_history_days=_int(values, "MIN_HISTORY_DAYS", 9),
            lead_time_minutes=_int(values, "LEAD_TIME_MINUTES", 10),
            n_estimators=_int(values, "N_ESTIMATORS", 60),
            max_depth=_int(values, "MAX_DEPTH", 12),
            promotion_tolerance=_float(values, "PROMOTION_TOLERANCE", 0.02),
            max_model_megabytes=_float(values, "MAX_MODEL_MEGABYTES", 10.0),
        )


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigurationError(f"SHOP_TIMEZONE {name!r} is not an IANA time zone") from error


def _model_location(values: Mapping[str, str]) -> ModelLocation:
    return ModelLocation(
        bucket=_required(values, "MODEL_BUCKET"),
        manifest_key=values.get("MODEL_MANIFEST_KEY", "models/manifest.json"),
        model_key=values.get("MODEL_KEY", "models/model.npz"),
    )


def _required(values: Mapping[str, str], name: str) -> str:
    value = values.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def _mode(raw: str) -> ScalingMode:
    try:
        return ScalingMode(raw.strip())
    except ValueError as error:
        allowed = ", ".join(mode.value for mode in ScalingMode)
        raise ConfigurationError(f"SCALING_MODE {raw!r} is not one of {allowed}") from error


def _float(values: Mapping[str, str], name: str, default: float) -> float:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as error:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from error


def _int(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from error
