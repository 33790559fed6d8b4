"""One predict run: metrics -> features -> forecast -> policy -> (maybe) action.

The handler wires AWS adapters into `PredictPorts` and calls `run_predict`; tests and the
local run pass moto-backed adapters. Every fault ends in a safe no-op with a reason:
nothing here scales on data it cannot trust.
"""

from __future__ import annotations

import enum
import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.features import (
    HISTORY_STEPS_NEEDED,
    LEVEL_STEPS,
    STEPS_PER_DAY,
    build_features,
    log_level,
)
from saleor_scaling.labels import capacity_needed
from saleor_scaling.model import (
    Forecast,
    ForecastModel,
    ModelError,
    ModelMetadata,
    ServingBounds,
    load_verified,
    manifest_summary,
)
from saleor_scaling.policy import Decision, GroupCapacity, decide, reactive_floor
from saleor_scaling.series import Metric, MetricHistory, floor_to_step
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS, PredictSettings, ScalingMode

CLOUDWATCH_WINDOW_STEPS = STEPS_PER_DAY + 24
"""Predict reads the last 26 hours from CloudWatch (recent lags and same time yesterday);
older steps (same time last week) come from the daily S3 backup the nightly job writes."""
STATE_FORMAT = 1


class MetricsSource(Protocol):
    def fetch(self, start: int, end: int, now: int) -> MetricHistory: ...


class HistorySource(Protocol):
    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory: ...


class ScalableGroup(Protocol):
    name: str

    def capacity(self) -> GroupCapacity: ...

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None: ...

    def release_floor(self, bounds: GroupCapacity) -> bool: ...


class ModelSource(Protocol):
    def current(self) -> ModelMetadata: ...

    def model_bytes(self, metadata: ModelMetadata) -> bytes: ...


class StateStore(Protocol):
    def load(self) -> dict[str, Any]: ...

    def save(self, document: dict[str, Any]) -> None: ...


class Notifier(Protocol):
    def notify(self, subject: str, body: dict[str, Any]) -> None: ...


@dataclass
class PredictPorts:
    metrics: MetricsSource
    archive: HistorySource
    group: ScalableGroup
    models: ModelSource
    state: StateStore
    notifier: Notifier
    model_cache: MutableMapping[str, ForecastModel] = field(default_factory=dict)
    """Survives warm invocations when the handler keeps the ports at module level."""


class Status(enum.StrEnum):
    SCALED = "scaled"
    """The group's desired capacity was changed."""
    DECIDED = "decided"
    """A decision was made and nothing needed changing, or forecast-only mode held it."""
    FALLBACK = "fallback"
    """No trustworthy forecast (model or metrics): nothing changed, reactive scaling rules."""
    DUPLICATE = "duplicate"
    """This schedule slot was already decided: nothing changed."""


@dataclass
class PredictResult:
    status: Status
    decision_time: int
    reason: str = ""
    mode: ScalingMode = ScalingMode.FORECAST_ONLY
    group: GroupCapacity | None = None
    decision: Decision | None = None
    forecast: Forecast | None = None
    predicted_capacity: float | None = None
    """Fractional instances needed at the target step (the forecast sized up by its headroom)."""
    reactive_floor: int | None = None
    forecast_error: float | None = None
    """Earlier forecast for the anchor step minus the capacity it turned out to need."""
    inputs: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    target_time: int | None = None
    floor_released: bool = False
    """Forecast-only mode gave MinSize back to the operator's value."""

    @property
    def fallback_used(self) -> bool:
        return self.status is Status.FALLBACK

    def log_record(self) -> dict[str, Any]:
        """Everything needed to explain the decision, as one structured log line."""
        record: dict[str, Any] = {
            "status": self.status.value,
            "decision_time": _iso(self.decision_time),
            "mode": self.mode.value,
            "reason": self.reason,
            "inputs": {key: _round(value) for key, value in self.inputs.items()},
            "model": self.model,
        }
        if self.group:
            record["group"] = {
                "min": self.group.min_size,
                "max": self.group.max_size,
                "desired": self.group.desired,
                "in_service": self.group.in_service,
                "min_size_now": self.group.floor,
            }
        if self.floor_released:
            record["floor_released"] = True
        if self.forecast and self.target_time is not None:
            record["forecast"] = {
                "target_time": _iso(self.target_time),
                "demand_mean_per_minute": _round(self.forecast.demand_mean),
                "demand_upper_per_minute": _round(self.forecast.demand_upper),
                "quantile": self.forecast.quantile,
                "headroom": _round(self.forecast.headroom),
                "headroom_basis": self.forecast.headroom_basis,
                "tree_spread": _round(self.forecast.tree_spread),
                "capacity_upper": _round(self.predicted_capacity),
            }
        if self.reactive_floor is not None:
            record["reactive_floor"] = self.reactive_floor
        if self.forecast_error is not None:
            record["forecast_error"] = _round(self.forecast_error)
        if self.decision:
            record["decision"] = {
                "recommended": self.decision.recommended,
                "target": self.decision.target,
                "floor": self.decision.floor,
                "action": self.decision.action.value,
                "applied": self.status is Status.SCALED,
                "clamps": list(self.decision.clamps),
                "explanation": self.decision.explanation,
            }
        return record


def run_predict(
    now: int,
    settings: PredictSettings,
    ports: PredictPorts,
    mode_override: ScalingMode | None = None,
) -> PredictResult:
    """Decide (and in forecast-and-scale mode apply) the capacity for the run at `now`."""
    decision_time = floor_to_step(now)
    # An event may make the run safer (forecast-only), never bolder than the deployment.
    mode = ScalingMode.FORECAST_ONLY if mode_override is ScalingMode.FORECAST_ONLY else settings.policy.mode
    result = PredictResult(Status.DECIDED, decision_time, mode=mode)

    state = ports.state.load()
    if int(state.get("last_decision_time", 0)) >= decision_time:
        result.status = Status.DUPLICATE
        result.reason = f"slot {_iso(decision_time)} already decided (replayed or late event)"
        return result

    result.group = group = ports.group.capacity()
    if settings.policy.mode is ScalingMode.FORECAST_ONLY and group.floor > group.min_size:
        # Switched back to forecast-only: the floor predictive left goes, so target
        # tracking alone decides again (no instance is removed by this).
        result.floor_released = ports.group.release_floor(group)

    try:
        model = _load_model(ports, ServingBounds(settings.capacity_per_instance))
    except ModelError as error:
        return _fallback(result, f"model unavailable: {error}")
    metadata = model.metadata
    result.model = manifest_summary(metadata)

    anchor = decision_time - ANCHOR_OFFSET_STEPS * STEP_SECONDS
    lookback = (HISTORY_STEPS_NEEDED + metadata.horizon_steps + LEVEL_STEPS) * STEP_SECONDS
    history = _read_history(ports, anchor - lookback, anchor + STEP_SECONDS, now)
    index = len(history) - 1
    demand = history.demand_per_minute()
    levels = log_level(demand)
    cpu_now = float(history[Metric.CPU][index])
    result.inputs = {
        "demand_per_minute": float(demand[index]),
        "response_time_seconds": float(history[Metric.RESPONSE_TIME][index]),
        "cpu_percent": cpu_now,
        "errors_5xx": float(history[Metric.ERRORS_5XX][index]),
        "history_steps": float(np.sum(~np.isnan(demand))),
    }
    if math.isnan(demand[index]) or math.isnan(levels[index]):
        return _fallback(
            result,
            f"no RequestCount for the anchor bucket {_iso(anchor)}: metrics missing or stale",
        )

    features = build_features(history, metadata.horizon_steps, metadata.timezone)[index]
    forecast = model.forecast(features, float(levels[index]), settings.policy.headroom_quantile)
    capacity_per_instance = metadata.capacity_per_instance
    predicted = float(capacity_needed(forecast.demand_upper, capacity_per_instance))
    result.forecast, result.predicted_capacity = forecast, predicted
    result.target_time = anchor + metadata.horizon_steps * STEP_SECONDS

    result.forecast_error = _score_earlier_forecast(
        state, anchor, float(demand[index]), capacity_per_instance
    )
    floor = reactive_floor(
        float(demand[index]),
        cpu_now,
        group.in_service,
        capacity_per_instance,
        settings.policy.target_cpu_percent,
    )
    result.reactive_floor = floor
    window_start = decision_time - settings.policy.scale_in_stabilization_minutes * 60
    recent = [int(r) for t, r in state.get("recommendations", []) if int(t) > window_start]
    decision = decide(predicted, group, floor, recent, settings.policy, mode)
    result.decision = decision

    # The slot is recorded before acting: if the action then fails, a retry of the same
    # event is a duplicate (no double scale-in) and the next run, 5 minutes on, decides
    # afresh while the reactive policy keeps serving.
    ports.state.save(
        _next_state(
            state, decision_time, window_start, decision, anchor, result, forecast, capacity_per_instance
        )
    )
    if decision.apply:
        ports.group.set_capacity(decision.target, decision.floor, group)
        result.status = Status.SCALED
        ports.notifier.notify(
            f"Saleor predictive scaling: {decision.action.value} {ports.group.name} "
            f"{group.desired} -> {decision.target}",
            result.log_record(),
        )
    result.reason = decision.explanation
    return result


def _read_history(ports: PredictPorts, start: int, end: int, now: int) -> MetricHistory:
    """The last 26 hours from CloudWatch in one call, older steps from the S3 backup;
    CloudWatch wins where both hold a value."""
    recent_start = end - CLOUDWATCH_WINDOW_STEPS * STEP_SECONDS
    recent = ports.metrics.fetch(recent_start, end, now)
    if start >= recent_start:
        return recent.window(start, end)
    # Days that ended two days ago are complete in the backup and never change again.
    sealed_before = floor_to_step(now, 86400) - 86400
    older = ports.archive.read(start, recent_start, sealed_before=sealed_before)
    return older.combine(recent).window(start, end)


def _load_model(ports: PredictPorts, bounds: ServingBounds) -> ForecastModel:
    metadata = ports.models.current()
    cache_key = metadata.model_version_id or metadata.sha256
    cached = ports.model_cache.get(cache_key)
    if cached is not None and cached.metadata.sha256 == metadata.sha256:
        return cached
    model = load_verified(ports.models.model_bytes(metadata), metadata, bounds)
    ports.model_cache.clear()
    ports.model_cache[cache_key] = model
    return model


def _fallback(result: PredictResult, reason: str) -> PredictResult:
    result.status = Status.FALLBACK
    result.reason = f"{reason}; holding capacity, reactive scaling stays in charge"
    return result


def _score_earlier_forecast(
    state: dict[str, Any], anchor: int, demand: float, capacity_per_instance: float
) -> float | None:
    earlier = state.get("forecasts", {}).get(str(anchor))
    if earlier is None:
        return None
    return float(earlier) - float(capacity_needed(demand, capacity_per_instance))


def _next_state(
    state: dict[str, Any],
    decision_time: int,
    window_start: int,
    decision: Decision,
    anchor: int,
    result: PredictResult,
    forecast: Forecast,
    capacity_per_instance: float,
) -> dict[str, Any]:
    recommendations = [[int(t), int(r)] for t, r in state.get("recommendations", []) if int(t) > window_start]
    recommendations.append([decision_time, decision.recommended])
    forecasts = {key: value for key, value in state.get("forecasts", {}).items() if int(key) > anchor}
    if result.target_time is not None:
        # The mean (not the sized-up forecast) is what the error metric should judge.
        forecasts[str(result.target_time)] = round(
            float(capacity_needed(forecast.demand_mean, capacity_per_instance)), 4
        )
    return {
        "format": STATE_FORMAT,
        "last_decision_time": decision_time,
        "recommendations": recommendations,
        "forecasts": forecasts,
        "last_decision": {
            "time": _iso(decision_time),
            "target": decision.target,
            "action": decision.action.value,
            "applied": decision.apply,
        },
    }


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)
