"""Configuration read once from environment variables into typed, validated objects.

Every variable and its default is documented beside the function's environment in
`template.yaml`; a bad value fails the cold start with a message that names it.
"""

from __future__ import annotations

import dataclasses
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


def bounded(default: float, low: float, high: float, env: str) -> Any:
    """A numeric setting with its environment variable and inclusive range, declared once
    beside the field: `check_bounds` enforces it however the object was built."""
    return field(default=default, metadata={"env": env, "range": (low, high)})


def check_bounds(settings: object) -> None:
    """Reject non-finite and out-of-range values of every `bounded` field, naming the
    variable. `not low <= x <= high` alone would let NaN through a hand-written `x <= 0`."""
    for spec in dataclasses.fields(settings):  # type: ignore[arg-type]
        if "range" not in spec.metadata:
            continue
        value = getattr(settings, spec.name)
        low, high = spec.metadata["range"]
        name = spec.metadata["env"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(f"{name}={value!r} is not a number")
        if not math.isfinite(value) or not low <= value <= high:
            raise ConfigurationError(f"{name}={value!r} must be a finite number in [{low:g}, {high:g}]")


DEFAULT_HEADROOM_QUANTILE = 0.6
"""Chosen on the backtest of the shared traces (docs/backtest.md): whole instances and the
scale-in window add their own margin, and at 0.6 NASA 1995 keeps under-provisioned minutes
at a seventh of reactive scaling's for 1.10x the oracle's instance-hours."""


HEADROOM_CONDITIONS = ("none", "recent-burstiness")
"""`headroom.CONDITIONS` (settings imports nothing of the domain; a test keeps them equal)."""


MAX_SCALE_IN_STEP_LIMIT = 100
"""A larger step is no gradual scale-in: a typo (1000000) must not read as 'remove all'."""


@dataclass(frozen=True)
class PolicySettings:
    """Knobs of the capacity policy (see `policy.decide`)."""

    mode: ScalingMode = ScalingMode.FORECAST_ONLY
    headroom_quantile: float = bounded(DEFAULT_HEADROOM_QUANTILE, 0.5, 0.99, "HEADROOM_QUANTILE")
    """Capacity is sized for the forecast times the factor the target step's busiest minute
    stayed within in this share of the model's held-out steps (`headroom`), before
    rounding up to whole instances."""
    max_scale_in_step: int = bounded(1, 0, MAX_SCALE_IN_STEP_LIMIT, "MAX_SCALE_IN_STEP")
    """At most this many instances removed per run: scale in gradually (0: predict never
    lowers desired capacity; target tracking alone scales in)."""
    scale_in_stabilization_minutes: int = bounded(30, 0, 24 * 60, "SCALE_IN_STABILIZATION_MINUTES")
    """Scale in only to the highest recommendation of this trailing window."""
    window_holds_reactive_floor: bool = True
    """WINDOW_HOLDS_REACTIVE_FLOOR: the window remembers each run's recommendation with the
    reactive floor in it (on), or without it (off): a spike's floor then sizes only the run
    that measured it, and scale-in follows the forecast of the new level (`policy.decide`)."""
    target_cpu_percent: float = bounded(70.0, 10.0, 95.0, "TARGET_CPU_PERCENT")
    """The reactive policy's CPU target: the floor is what the current CPU needs at it."""

    def __post_init__(self) -> None:
        check_bounds(self)


MAX_SHORTFALL_GOAL_PERCENT = 20.0
"""A goal above a fifth of minutes short is no goal for a shop: a typo (50 for 0.5)."""


@dataclass(frozen=True)
class ShortfallGoal:
    """The share of minutes short the operator accepts, met by the nightly replay's choice
    of HeadroomQuantile (`simulation.replay`); 0 turns the tuning off."""

    percent: float = bounded(1.0, 0.0, MAX_SHORTFALL_GOAL_PERCENT, "TARGET_SHORTFALL_PERCENT")
    quantile_floor: float = bounded(0.5, 0.5, 0.99, "TUNED_HEADROOM_QUANTILE_FLOOR")
    """No tuned quantile below this, whatever the replay or a manifest says."""

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def on(self) -> bool:
        return self.percent > 0

    @property
    def share(self) -> float:
        return self.percent / 100.0

    @classmethod
    def from_env(cls, values: Mapping[str, str]) -> ShortfallGoal:
        raw = values.get("TARGET_SHORTFALL_PERCENT", "").strip().lower()
        return cls(
            percent=0.0 if raw == "off" else _float(values, "TARGET_SHORTFALL_PERCENT", 1.0),
            quantile_floor=_float(values, "TUNED_HEADROOM_QUANTILE_FLOOR", 0.5),
        )


def quantile_range() -> tuple[float, float]:
    """HEADROOM_QUANTILE's allowed range, as `PolicySettings` declares it."""
    spec = next(spec for spec in dataclasses.fields(PolicySettings) if spec.name == "headroom_quantile")
    low, high = spec.metadata["range"]
    return float(low), float(high)


MODELS_AREA = "models"
STATE_AREA = "state"
HISTORY_AREA = "history"
"""The bucket's three areas (docs/security.md): only retrain writes models/ and history/,
only predict state/, and the bucket policy denies anything else. A key setting outside
its area would be denied at the first write, or have one function read another's objects
as its own (a state as a manifest, a model over the state)."""
MAX_KEY_BYTES = 1024
"""S3's limit on a key's length in UTF-8 (moto does not enforce it)."""
HISTORY_DAY_SUFFIX_BYTES = len("/2023/11/28.json.gz")
"""What the history backup appends to its prefix for each day's object."""


def check_key(name: str, value: str, area: str, *, prefix: bool = False) -> None:
    """`value` is a key (a key prefix if `prefix`) inside `area`/: relative, no `.`/`..`
    or empty segment, so it can name no object of another area, and within S3's length."""
    text = value[:-1] if prefix and value.endswith("/") else value
    segments = text.split("/")
    if segments[0] != area or (not prefix and len(segments) < 2) or {"", ".", ".."} & set(segments):
        kind = "a key prefix" if prefix else "an object key"
        raise ConfigurationError(
            f"{name}={value!r} must be {kind} under {area}/: relative, without '.', '..' or empty segments"
        )
    limit = MAX_KEY_BYTES - (HISTORY_DAY_SUFFIX_BYTES if prefix else 0)
    if len(value.encode()) > limit:
        raise ConfigurationError(f"{name} is {len(value.encode())} bytes long, over the {limit} S3 allows")


@dataclass(frozen=True)
class ModelLocation:
    """Where the model registry lives: a manifest that points at one model version."""

    bucket: str
    manifest_key: str = "models/manifest.json"
    model_key: str = "models/model.npz"

    def __post_init__(self) -> None:
        check_key("MODEL_MANIFEST_KEY", self.manifest_key, MODELS_AREA)
        check_key("MODEL_KEY", self.model_key, MODELS_AREA)
        if self.model_key == self.manifest_key:
            raise ConfigurationError(
                f"MODEL_KEY and MODEL_MANIFEST_KEY are both {self.model_key!r}: "
                "each model would overwrite the manifest"
            )
        if self.warm_up_key in (self.manifest_key, self.model_key):
            raise ConfigurationError(
                f"{self.warm_up_key!r} is where retrain writes its warm-up notice: "
                "choose another MODEL_KEY or MODEL_MANIFEST_KEY"
            )

    @property
    def warm_up_key(self) -> str:
        """Beside the manifest: the notice that the shop is too young for a model yet
        (`saleor_scaling.warmup`)."""
        folder = self.manifest_key.rpartition("/")[0]
        return f"{folder}/warm-up.json" if folder else "warm-up.json"


@dataclass(frozen=True)
class ShopSettings:
    """What both functions need to know about the shop they serve."""

    auto_scaling_group_name: str
    load_balancer_full_name: str
    model: ModelLocation
    timezone: str = "UTC"
    capacity_per_instance: float = bounded(1000.0, 1.0, 1_000_000.0, "CAPACITY_PER_INSTANCE")
    """Requests per minute one instance serves at the target utilisation; retraining learns
    it from history where it can (within 4x of this value), and the model's metadata
    carries what it learned."""
    target_cpu_percent: float = bounded(70.0, 10.0, 95.0, "TARGET_CPU_PERCENT")
    topic_arn: str = ""
    history_prefix: str = ""
    shortfall_goal: ShortfallGoal = field(default_factory=ShortfallGoal)

    def __post_init__(self) -> None:
        check_bounds(self)
        _check_timezone(self.timezone)
        name = "HISTORY_PREFIX"
        if not self.history_prefix:
            object.__setattr__(self, "history_prefix", f"history/{self.auto_scaling_group_name}")
            name = "HISTORY_PREFIX (by default history/AUTO_SCALING_GROUP_NAME)"
        check_key(name, self.history_prefix, HISTORY_AREA, prefix=True)

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
            "shortfall_goal": ShortfallGoal.from_env(values),
        }


@dataclass(frozen=True)
class PoolBounds:
    """The operator's bounds on the warm pool predict sizes (`saleor_scaling.warm_pool`)."""

    min_size: int
    max_size: int


MAX_LEAD_TIME_MINUTES = 120
"""Beyond two hours of boot and warm-up a 5-minute forecast is no longer what sizes the fleet."""


def lead_time_field() -> Any:
    return bounded(10, 1, MAX_LEAD_TIME_MINUTES, "LEAD_TIME_MINUTES")


def warm_pool_lead_time_field() -> Any:
    return bounded(0, 0, MAX_LEAD_TIME_MINUTES, "WARM_POOL_LEAD_TIME_MINUTES")


def ready_minutes(lead_time_minutes: int, warm_pool_lead_time_minutes: int) -> int:
    """Minutes until new capacity serves: a warm pool's start where one is configured
    (WARM_POOL_LEAD_TIME_MINUTES above 0), otherwise a fresh launch's. Retrain trains for
    it and predict checks its model against it, so both read it here."""
    if warm_pool_lead_time_minutes > lead_time_minutes:
        raise ConfigurationError(
            f"WARM_POOL_LEAD_TIME_MINUTES={warm_pool_lead_time_minutes} is longer than "
            f"LEAD_TIME_MINUTES={lead_time_minutes}: an instance from the warm pool is never "
            "slower than a fresh launch"
        )
    return warm_pool_lead_time_minutes or lead_time_minutes


@dataclass(frozen=True)
class PredictSettings(ShopSettings):
    policy: PolicySettings = field(default_factory=PolicySettings)
    state_key: str = ""
    event_clock_check: bool = True
    """Refuse events whose time is far from the function's own clock (EVENT_CLOCK_CHECK
    on/off). Only a replay of recorded events (the local run) turns it off, explicitly."""
    event_max_delay_seconds: int = bounded(240, 0, 3600, "EVENT_MAX_DELAY_SECONDS")
    """An event older than this is stale: its slot's decision is due from the next run,
    5 minutes after it, and metrics read now no longer describe its slot."""
    event_max_early_seconds: int = bounded(60, 0, 3600, "EVENT_MAX_EARLY_SECONDS")
    """An event from the future (beyond clock skew) would claim a slot before it is due
    and make the real run of that slot a duplicate."""
    fallback_release_minutes: int = bounded(30, 5, 24 * 60, "FALLBACK_RELEASE_MINUTES")
    """The lease on the MinSize floor predict raises (`saleor_scaling.lease`): unless a
    successful decision renews it within this long, the floor goes back to the operator's
    MinSize, so target tracking alone decides."""
    demand_ceiling_factor: float = bounded(10.0, 1.5, 1000.0, "DEMAND_CEILING_FACTOR")
    """Demand above this multiple of the model's ceiling basis (the 99.9th percentile of the
    clean demand it was trained on) is not acted on
    (a fallback): a forecast from so far outside its training data means nothing, and a
    corrupt or forged datapoint must not scale the group to MaxSize."""
    lead_time_minutes: int = lead_time_field()
    """A fresh launch's boot and warm-up, as retrain is given it."""
    warm_pool_lead_time_minutes: int = warm_pool_lead_time_field()
    """An instance from the warm pool's, 0 without a pool (`ready_minutes`)."""
    warm_pool_min_size: int = bounded(0, 0, 100, "WARM_POOL_MIN_SIZE")
    """The fewest instances predict leaves in the warm pool (the template's WarmPoolMinSize)."""
    warm_pool_max_size: int = bounded(0, 0, 100, "WARM_POOL_MAX_SIZE")
    """The most predict puts in the warm pool; 0: predict never sizes it (`saleor_scaling.warm_pool`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        ready_minutes(self.lead_time_minutes, self.warm_pool_lead_time_minutes)
        if self.warm_pool_max_size and self.warm_pool_min_size > self.warm_pool_max_size:
            raise ConfigurationError(
                f"WARM_POOL_MIN_SIZE={self.warm_pool_min_size} is above "
                f"WARM_POOL_MAX_SIZE={self.warm_pool_max_size}"
            )
        name = "STATE_KEY"
        if not self.state_key:
            object.__setattr__(self, "state_key", f"state/{self.auto_scaling_group_name}/predict-state.json")
            name = "STATE_KEY (by default state/AUTO_SCALING_GROUP_NAME/predict-state.json)"
        check_key(name, self.state_key, STATE_AREA)

    @property
    def ready_minutes(self) -> int:
        """What the model's horizon must cover: new capacity serves this long after it is asked for."""
        return ready_minutes(self.lead_time_minutes, self.warm_pool_lead_time_minutes)

    @property
    def warm_pool_bounds(self) -> PoolBounds | None:
        """None: predict leaves the warm pool alone (and never reads it)."""
        if not self.warm_pool_max_size:
            return None
        return PoolBounds(self.warm_pool_min_size, self.warm_pool_max_size)

    @property
    def ready_from(self) -> str:
        return "warm pool" if self.warm_pool_lead_time_minutes else "fresh launch"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PredictSettings:
        values = os.environ if env is None else env
        shop = cls.shop_fields(values)
        return cls(
            **shop,
            policy=_policy(values, shop["target_cpu_percent"]),
            state_key=values.get("STATE_KEY", ""),
            event_clock_check=_switch(values, "EVENT_CLOCK_CHECK", True),
            event_max_delay_seconds=_int(values, "EVENT_MAX_DELAY_SECONDS", 240),
            event_max_early_seconds=_int(values, "EVENT_MAX_EARLY_SECONDS", 60),
            fallback_release_minutes=_int(values, "FALLBACK_RELEASE_MINUTES", 30),
            demand_ceiling_factor=_float(values, "DEMAND_CEILING_FACTOR", 10.0),
            lead_time_minutes=_int(values, "LEAD_TIME_MINUTES", 10),
            warm_pool_lead_time_minutes=_int(values, "WARM_POOL_LEAD_TIME_MINUTES", 0),
            warm_pool_min_size=_int(values, "WARM_POOL_MIN_SIZE", 0),
            warm_pool_max_size=_int(values, "WARM_POOL_MAX_SIZE", 0),
        )


MAX_MODEL_MEGABYTES_LIMIT = 50.0
"""Predict refuses a model object above `model.MAX_MODEL_BYTES` (50 MB) before hashing it:
a retrain allowed more would promote a model no predict run loads."""

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

    training_window_days: int = bounded(28, 2, 365, "TRAINING_WINDOW_DAYS")
    holdout_days: int = bounded(2, 1, 14, "HOLDOUT_DAYS")
    min_history_days: int = bounded(9, 2, 365, "MIN_HISTORY_DAYS")
    """Refuse to train on less: a week for the weekly features, plus the held-out tail."""
    lead_time_minutes: int = lead_time_field()
    warm_pool_lead_time_minutes: int = warm_pool_lead_time_field()
    """With a warm pool, the model forecasts this far ahead instead (`ready_minutes`)."""
    n_estimators: int = bounded(60, 10, 500, "N_ESTIMATORS")
    max_depth: int = bounded(12, 4, 20, "MAX_DEPTH")
    promotion_tolerance: float = bounded(0.02, 0.0, 0.5, "PROMOTION_TOLERANCE")
    """A challenger is 'not worse' when its error is within this share of the champion's."""
    max_model_megabytes: float = bounded(10.0, 0.1, MAX_MODEL_MEGABYTES_LIMIT, "MAX_MODEL_MEGABYTES")
    """Retrain refuses to promote a bigger model (compressed)."""
    headroom_condition: str = "none"
    """What the headroom table's factors are scaled by (`headroom.Condition`): none, or
    recent-burstiness (measured in docs/backtest.md, "Conditional headroom")."""
    saleor_api_url: str = ""
    """The shop's GraphQL endpoint, for proposing events from its promotions (optional)."""
    promotions_token_secret_arn: str = ""
    """The Secrets Manager secret holding an app token with MANAGE_DISCOUNTS (optional)."""
    policy: PolicySettings = field(default_factory=PolicySettings)
    """Predict's policy, which the nightly replay runs (`simulation.replay`)."""
    group_min_size: int = bounded(1, 1, 100, "GROUP_MIN_SIZE")
    group_max_size: int = bounded(10, 2, 100, "GROUP_MAX_SIZE")
    """The group's bounds, for the replay (the template's GroupMinSize and GroupMaxSize)."""

    @property
    def reads_promotions(self) -> bool:
        """Both set: the nightly run proposes events from the shop's upcoming promotions.
        The URL is checked when it is used, so that a wrong one is a warning in the report,
        never a failed night (the template's AllowedPattern refuses most at deploy)."""
        return bool(self.saleor_api_url and self.promotions_token_secret_arn)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.holdout_days < self.min_history_days <= self.training_window_days:
            raise ConfigurationError("need HOLDOUT_DAYS < MIN_HISTORY_DAYS <= TRAINING_WINDOW_DAYS")
        if self.group_min_size > self.group_max_size:
            raise ConfigurationError(
                f"GROUP_MIN_SIZE={self.group_min_size} is above GROUP_MAX_SIZE={self.group_max_size}"
            )
        if self.headroom_condition not in HEADROOM_CONDITIONS:
            raise ConfigurationError(
                f"HEADROOM_CONDITION={self.headroom_condition!r} must be one of "
                f"{', '.join(HEADROOM_CONDITIONS)}"
            )
        ready_minutes(self.lead_time_minutes, self.warm_pool_lead_time_minutes)

    @property
    def horizon_steps(self) -> int:
        return horizon_steps_for(ready_minutes(self.lead_time_minutes, self.warm_pool_lead_time_minutes))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainSettings:
        values = os.environ if env is None else env
        shop = cls.shop_fields(values)
        return cls(
            **shop,
            policy=_policy(values, shop["target_cpu_percent"]),
            group_min_size=_int(values, "GROUP_MIN_SIZE", 1),
            group_max_size=_int(values, "GROUP_MAX_SIZE", 10),
            training_window_days=_int(values, "TRAINING_WINDOW_DAYS", 28),
            holdout_days=_int(values, "HOLDOUT_DAYS", 2),
            min_history_days=_int(values, "MIN_HISTORY_DAYS", 9),
            lead_time_minutes=_int(values, "LEAD_TIME_MINUTES", 10),
            warm_pool_lead_time_minutes=_int(values, "WARM_POOL_LEAD_TIME_MINUTES", 0),
            n_estimators=_int(values, "N_ESTIMATORS", 60),
            max_depth=_int(values, "MAX_DEPTH", 12),
            promotion_tolerance=_float(values, "PROMOTION_TOLERANCE", 0.02),
            max_model_megabytes=_float(values, "MAX_MODEL_MEGABYTES", 10.0),
            headroom_condition=values.get("HEADROOM_CONDITION", "none"),
            saleor_api_url=values.get("SALEOR_API_URL", ""),
            promotions_token_secret_arn=values.get("SALEOR_PROMOTIONS_TOKEN_SECRET_ARN", ""),
        )


def _policy(values: Mapping[str, str], target_cpu_percent: float) -> PolicySettings:
    return PolicySettings(
        mode=_mode(values.get("SCALING_MODE", ScalingMode.FORECAST_ONLY.value)),
        headroom_quantile=_float(values, "HEADROOM_QUANTILE", DEFAULT_HEADROOM_QUANTILE),
        max_scale_in_step=_int(values, "MAX_SCALE_IN_STEP", 1),
        scale_in_stabilization_minutes=_int(values, "SCALE_IN_STABILIZATION_MINUTES", 30),
        window_holds_reactive_floor=_switch(values, "WINDOW_HOLDS_REACTIVE_FLOOR", True),
        target_cpu_percent=target_cpu_percent,
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


def _switch(values: Mapping[str, str], name: str, default: bool) -> bool:
    raw = values.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"on", "true", "1"}:
        return True
    if raw in {"off", "false", "0"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} must be on or off")


def _int(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from error
