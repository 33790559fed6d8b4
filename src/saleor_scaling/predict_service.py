"""One predict run: metrics -> features -> forecast -> policy -> (maybe) action.

The handler wires AWS adapters into `PredictPorts` and calls `run_predict`; tests and the
local run pass moto-backed adapters. Every fault ends in a safe no-op with a reason:
nothing here scales on data it cannot trust. What "safe" means run by run:

- an event far from the function's own clock is refused (stale or early), before it can
  claim a slot;
- the MinSize floor predict raises is a lease recorded on the group (`saleor_scaling.lease`):
  every run first gives back a floor whose lease has expired, before it reads anything
  that could fail, and only a successful decision renews it;
- a slot is claimed once, with a conditional write of the state object, before anything
  is changed, and the lease names the last slot that acted: a retry, a replay or a
  concurrent run of the same slot does nothing, even after the state object was lost;
- impossible metric values are missing data, and demand far above anything the model was
  trained on is a fallback, never a jump to MaxSize;
- MinSize set by anyone but predict becomes the operator's MinSize, never lowered.
"""

from __future__ import annotations

import enum
import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from saleor_scaling import STEP_SECONDS
from saleor_scaling.calendar import (
    Calendar,
    CalendarError,
    PlannedEvent,
    PlannedFloor,
    event_steps,
    normal_load,
    peak_capacity,
    planned_floor,
    upcoming,
)
from saleor_scaling.features import (
    HISTORY_STEPS_NEEDED,
    LEVEL_STEPS,
    STEPS_PER_DAY,
    build_features,
    log_level,
)
from saleor_scaling.headroom import recent_burstiness
from saleor_scaling.labels import capacity_needed, instances_for
from saleor_scaling.lease import Lease, Ownership
from saleor_scaling.model import (
    Forecast,
    ForecastModel,
    ModelError,
    ModelMetadata,
    ModelNotFoundError,
    ServingBounds,
    load_verified,
    manifest_summary,
)
from saleor_scaling.policy import (
    Decision,
    FloorReading,
    GroupCapacity,
    GroupFacts,
    decide,
    reactive_floor,
    read_floor,
)
from saleor_scaling.series import FloatArray, Metric, MetricHistory, drop_impossible_values, floor_to_step
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS, PredictSettings, ScalingMode, horizon_steps_for
from saleor_scaling.shortfall_goal import QuantileChoice, quantile_for_run
from saleor_scaling.state import MAX_EVENT_NOTICES, DecisionState, StateConflictError, parse_state
from saleor_scaling.warm_pool import (
    POOL_PLAN_STEPS,
    PoolConfiguration,
    PoolDecision,
    coming_peak_demand,
    size_pool,
)
from saleor_scaling.warmup import WarmUp

BoolArray = npt.NDArray[np.bool_]

CLOUDWATCH_WINDOW_STEPS = STEPS_PER_DAY + 24
"""Predict reads the last 26 hours from CloudWatch (recent lags and same time yesterday);
older steps (same time last week) come from the daily S3 backup the nightly job writes."""


class MetricsSource(Protocol):
    def fetch(self, start: int, end: int, now: int) -> MetricHistory: ...


class HistorySource(Protocol):
    corrupt_days: list[str]
    """Backup objects found unreadable (skipped as missing data)."""

    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory: ...


class ScalableGroup(Protocol):
    name: str

    def describe(self) -> GroupFacts: ...

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None: ...

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None: ...

    def write_lease(self, lease: Lease) -> None: ...


class WarmPoolPort(Protocol):
    def describe(self) -> PoolConfiguration | None: ...

    def resize(self, size: int, current: PoolConfiguration) -> None:
        """MinSize and MaxGroupPreparedCapacity both `size`; state and reuse as `current`."""


class ModelSource(Protocol):
    def current(self) -> ModelMetadata: ...

    def model_bytes(self, metadata: ModelMetadata) -> bytes: ...

    def warm_up(self) -> WarmUp | None: ...


class StoredStateLike(Protocol):
    @property
    def document(self) -> Any: ...

    @property
    def version(self) -> str | None: ...

    @property
    def unreadable(self) -> str: ...


class StateStore(Protocol):
    def load(self) -> StoredStateLike: ...

    def save(self, document: dict[str, Any], version: str | None) -> None:
        """Write only if the object is still the version read (None: still absent);
        `StateConflictError` otherwise."""


class Notifier(Protocol):
    def notify(self, subject: str, body: dict[str, Any]) -> None: ...


class InstanceQuota(Protocol):
    def instances_allowed(self, instance_types: tuple[str, ...]) -> tuple[int, str]:
        """How many instances the account's quota allows, and a sentence saying so; any
        exception: unknown (no quota notice, nothing else changes)."""


class CalendarSource(Protocol):
    def events(self, now: int) -> Calendar:
        """The planned events; `CalendarError` for a calendar that must not be acted on."""


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
    calendar: CalendarSource | None = None
    """The operator's planned events (`saleor_scaling.calendar`); None: no calendar."""
    quota: InstanceQuota | None = None
    """The account's instance quota, read only before a planned event; None: not checked."""
    warm_pool: WarmPoolPort | None = None
    """Only where predict sizes the warm pool (WARM_POOL_MAX_SIZE above 0)."""


class Status(enum.StrEnum):
    SCALED = "scaled"
    """The group's desired capacity or its MinSize floor was changed."""
    DECIDED = "decided"
    """A decision was made and nothing needed changing, or forecast-only mode held it."""
    FALLBACK = "fallback"
    """No trustworthy forecast (model or metrics): reactive scaling rules; at most the
    floor predict raised is lowered back towards the operator's MinSize."""
    DUPLICATE = "duplicate"
    """This schedule slot was already decided: nothing changed."""
    REJECTED = "rejected"
    """The event's time is too far from the function's clock (stale or early): nothing
    read, nothing changed, no slot claimed."""
    WARMING_UP = "warming-up"
    """No model exists yet and retrain's warm-up notice says the shop is too young for one
    (`saleor_scaling.warmup`): as a fallback, nothing sized and nothing changed, but
    expected, so it is its own metric and pages nobody."""
    DRY_RUN = "dry-run"
    """A rehearsal (`"detail": {"dry_run": true}`): everything read and decided, nothing
    written or changed; `dry_run` in the log says what the run would have done."""


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
    headroom_quantile: QuantileChoice | None = None
    """The quantile the forecast was sized at, and why (`shortfall_goal.quantile_for_run`)."""
    forecast_error: float | None = None
    """Earlier forecast for the anchor step minus the capacity it turned out to need."""
    inputs: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    target_time: int | None = None
    floor_released: bool = False
    """MinSize went back to the operator's value: the floor's lease had expired, or the
    deployment is in forecast-only mode."""
    lease_until: int | None = None
    """When the floor predict holds expires unless a later decision renews it."""
    floor_note: str = ""
    """What was found about MinSize (an operator's change adopted, an unusable tag)."""
    state_reset: str = ""
    """Why a corrupt state object was replaced by a fresh one (empty: it was valid)."""
    notification_error: str = ""
    """The SNS notice failed after the group was changed (the change stands)."""
    corrupt_history: list[str] = field(default_factory=list)
    """History backup objects this run found corrupt and read as missing days."""
    implausible_values: int = 0
    """Datapoints read as missing: impossible (negative, CPU over 100 %, non-finite) or
    above the demand ceiling."""
    would: list[str] = field(default_factory=list)
    """In a dry run: every write the run would have made, in order."""
    dry_run_outcome: str = ""
    """In a dry run: the status the run would have had."""
    planned: PlannedFloor | None = None
    """The planned event that shaped this decision (the largest of those active)."""
    calendar_warning: str = ""
    """Why the calendar was ignored (unreadable or invalid): decided as without events."""
    event_notices: list[tuple[PlannedEvent, int, str]] = field(default_factory=list)
    """Events starting soon that need more than MaxSize or the account's instance quota
    allows (the event, the capacity it needs, the limit it passes), each noticed once."""
    quota_warning: str = ""
    """Why the instance quota could not be checked before an event (no notice for it)."""
    instance_types: tuple[str, ...] = ()
    """The types of the group's instances, as described this run."""
    warm_up: WarmUp | None = None
    """The warm-up notice that made a missing model expected (status WARMING_UP)."""
    lead_time: dict[str, Any] = field(default_factory=dict)
    """The ready delay the decision serves (a warm pool's or a fresh launch's) and how far
    past the decision the model forecasts."""
    horizon_note: str = ""
    """A warning when the model forecasts less far ahead than new capacity needs to serve."""
    warm_pool: PoolDecision | None = None
    """The warm pool's size this decision set (or would set)."""
    warm_pool_applied: bool = False
    warm_pool_note: str = ""
    """Why the pool was not sized (none on the group, a failed call)."""

    @property
    def fallback_used(self) -> bool:
        return self.status is Status.FALLBACK

    @property
    def changed_group(self) -> bool:
        return self.status is Status.SCALED or self.floor_released

    @property
    def pool_explanation(self) -> str:
        if self.warm_pool is None:
            return ""
        prefix = ""
        if self.warm_pool.changes and not self.warm_pool_applied:
            prefix = "would set " if self.mode is ScalingMode.FORECAST_ONLY else "could not set "
        return prefix + self.warm_pool.explanation

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
                "floor_managed": self.group.floor_managed,
            }
        for key, value in (
            ("floor_note", self.floor_note),
            ("state_reset", self.state_reset),
            ("notification_error", self.notification_error),
            ("calendar_warning", self.calendar_warning),
            ("quota_warning", self.quota_warning),
        ):
            if value:
                record[key] = value
        if self.implausible_values:
            record["implausible_values"] = self.implausible_values
        if self.corrupt_history:
            record["corrupt_history"] = self.corrupt_history
        if self.warm_up is not None:
            record["warm_up"] = {
                "history_days": round(self.warm_up.history_days, 2),
                "first_model_after": _iso(self.warm_up.first_model_after),
                "hours_to_first_model": round(self.warm_up.hours_to_first_model(self.decision_time), 2),
                "notice_until": _iso(self.warm_up.until),
            }
        if self.lead_time:
            record["lead_time"] = self.lead_time
        if self.horizon_note:
            record["horizon_note"] = self.horizon_note
        if self.warm_pool_note:
            record["warm_pool_note"] = self.warm_pool_note
        if self.status is Status.DRY_RUN:
            record["dry_run"] = {"would_be": self.dry_run_outcome, "would": self.would}
        if self.floor_released:
            record["floor_released"] = True
        if self.lease_until is not None:
            record["floor_lease_until"] = _iso(self.lease_until)
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
            if self.headroom_quantile is not None:
                record["forecast"]["headroom_quantile"] = self.headroom_quantile.record()
        if self.reactive_floor is not None:
            record["reactive_floor"] = self.reactive_floor
        if self.planned is not None:
            record["planned_event"] = self.planned.record()
        if self.event_notices:
            record["event_notices"] = [
                {"name": event.name, "start": _iso(event.start), "needs": needs, "limit": limit}
                for event, needs, limit in self.event_notices
            ]
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
            if self.decision.remembered is not None:
                record["decision"]["remembered"] = self.decision.remembered
            if self.warm_pool is not None:
                record["decision"]["warm_pool"] = {
                    "size_before": self.warm_pool.current.min_size,
                    "max_prepared_before": self.warm_pool.current.max_prepared_capacity,
                    "size": self.warm_pool.size,
                    "coming_hour_needs": self.warm_pool.needed,
                    "clamps": list(self.warm_pool.clamps),
                    "applied": self.warm_pool_applied,
                    "explanation": self.pool_explanation,
                }
        return record


class _FallbackError(Exception):
    """No trustworthy forecast this run; the message says why."""


class _WarmingUpError(_FallbackError):
    """No model yet, and retrain's valid warm-up notice says that is expected."""

    def __init__(self, message: str, notice: WarmUp) -> None:
        super().__init__(message)
        self.notice = notice


@dataclass
class _Forecasted:
    decision: Decision
    anchor: int
    forecast: Forecast
    capacity_per_instance: float
    coming_hour_needs: int = 0
    """Instances the coming hour needs at most (`saleor_scaling.warm_pool`)."""


def run_predict(
    now: int,
    settings: PredictSettings,
    ports: PredictPorts,
    mode_override: ScalingMode | None = None,
    received_at: float | None = None,
    dry_run: bool = False,
) -> PredictResult:
    """Decide (and in forecast-and-scale mode apply) the capacity for the run at `now`, the
    event's time. `received_at` is the function's own clock; None where the caller has
    none of its own (the backtest replays recorded time). A dry run reads and decides as
    the real run would, through ports that write nothing, and may repeat a decided slot."""
    if dry_run:
        return _rehearse(now, settings, _read_only(ports), mode_override, received_at)
    return _run(now, settings, ports, mode_override, received_at, rehearsal=False)


def _rehearse(
    now: int,
    settings: PredictSettings,
    ports: PredictPorts,
    mode_override: ScalingMode | None,
    received_at: float | None,
) -> PredictResult:
    result = _run(now, settings, ports, mode_override, received_at, rehearsal=True)
    assert isinstance(ports.group, _ReadOnlyGroup)
    result.would = ports.group.would
    result.dry_run_outcome = result.status.value
    result.status = Status.DRY_RUN
    result.reason = f"dry run, nothing written or changed: {result.reason}"
    return result


def _run(
    now: int,
    settings: PredictSettings,
    ports: PredictPorts,
    mode_override: ScalingMode | None,
    received_at: float | None,
    rehearsal: bool,
) -> PredictResult:
    decision_time = floor_to_step(now)
    # An event may make the run safer (forecast-only), never bolder than the deployment.
    mode = ScalingMode.FORECAST_ONLY if mode_override is ScalingMode.FORECAST_ONLY else settings.policy.mode
    result = PredictResult(Status.DECIDED, decision_time, mode=mode)

    refusal = _clock_refusal(now, received_at, settings)
    if refusal:
        result.status, result.reason = Status.REJECTED, refusal
        return result

    # First, before anything that can fail on a bad object or a missing metric: give back
    # a floor whose lease has expired. Only the group is read for it.
    clock_now = float(now if received_at is None else received_at)
    reading = _settle_floor(ports, settings, clock_now, result)
    ownership = reading.ownership

    stored = ports.state.load()
    state, problem = parse_state(stored.document, decision_time, received_at, settings)
    if stored.unreadable or problem:
        # A fresh state, written over the corrupt object with If-Match on its version: the
        # one-action-per-slot guarantee holds through the reset, and the lease's slot holds
        # it even where the state object is lost.
        result.state_reset = stored.unreadable or problem or ""
    if max(state.last_decision_time, ownership.slot) >= decision_time and not rehearsal:
        result.status = Status.DUPLICATE
        result.reason = f"slot {_iso(decision_time)} already decided (replayed or late event)"
        return result

    group = reading.group
    try:
        forecasted = _forecast_and_decide(now, decision_time, settings, ports, state, result, mode)
    except _WarmingUpError as warming:
        result.warm_up = warming.notice
        return _fall_back(
            result, str(warming), decision_time, ports, state, stored.version, ownership, Status.WARMING_UP
        )
    except _FallbackError as reason:
        return _fall_back(result, str(reason), decision_time, ports, state, stored.version, ownership)

    decision = forecasted.decision
    result.decision = decision
    # The slot is recorded before acting, with a conditional write: if the action then
    # fails, a retry of the same event is a duplicate (no double scale-in), and of two
    # concurrent runs of one slot only the first to write may act.
    next_state = _next_state(state, decision_time, settings, decision, forecasted, result)
    if not _claim_slot(ports, next_state, stored.version, result):
        return result
    lease = _renewed_lease(decision, group, ownership, decision_time, settings, mode)
    if lease is not None:
        # Written before MinSize changes: a failed write leaves the group as it was.
        ports.group.write_lease(lease)
        result.lease_until = lease.until
    # Set before the notice goes out: the notice is the log record, reason included.
    result.reason = decision.explanation
    if result.headroom_quantile is not None and result.headroom_quantile.tuned is not None:
        result.reason = (
            f"{result.reason}; headroom quantile {result.headroom_quantile.value:g}, "
            f"{result.headroom_quantile.why}"
        )
    pool_change = _size_warm_pool(ports, settings, decision, group, forecasted, result, mode)
    if decision.apply:
        ports.group.set_capacity(decision.target, decision.floor, group)
        result.status = Status.SCALED
        if lease is not None and lease.pending:
            _confirm(ports, result, lease, decision.floor)
    # After the capacity: a pool that cannot be resized must not hold up the scale-out.
    if pool_change is not None:
        _resize_pool(ports, pool_change, result)
    if result.warm_pool is not None:
        result.reason = f"{result.reason}; {result.pool_explanation}"
    if decision.apply:
        _notify(
            ports,
            result,
            f"Saleor predictive scaling: {decision.action.value} {ports.group.name} "
            f"{group.desired} -> {decision.target}",
        )
    _notify_events(ports, result)
    return result


def _size_warm_pool(
    ports: PredictPorts,
    settings: PredictSettings,
    decision: Decision,
    group: GroupCapacity,
    forecasted: _Forecasted,
    result: PredictResult,
    mode: ScalingMode,
) -> PoolDecision | None:
    """The pool's size in this decision; returned when it must be changed now. Outside the
    capacity decision's path: a pool that cannot be read or sized is a note, never a fault."""
    bounds = settings.warm_pool_bounds
    if bounds is None or ports.warm_pool is None:
        return None
    try:
        current = ports.warm_pool.describe()
    except Exception as error:  # throttling, a missing permission
        result.warm_pool_note = f"warning: could not read the warm pool ({type(error).__name__}: {error})"
        return None
    if current is None:
        result.warm_pool_note = (
            f"the group has no warm pool: nothing to size (WARM_POOL_MAX_SIZE {bounds.max_size})"
        )
        return None
    sized = size_pool(forecasted.coming_hour_needs, decision.target, group.max_size, current, bounds)
    result.warm_pool = sized
    if not sized.changes or mode is not ScalingMode.FORECAST_AND_SCALE:
        return None
    result.warm_pool_applied = True
    return sized


def _resize_pool(ports: PredictPorts, sized: PoolDecision, result: PredictResult) -> None:
    assert ports.warm_pool is not None
    try:
        ports.warm_pool.resize(sized.size, sized.current)
    except Exception as error:  # throttling, a missing permission: the capacity decision stands
        result.warm_pool_applied = False
        result.warm_pool_note = f"warning: could not size the warm pool ({type(error).__name__}: {error})"


class _ReadOnlyGroup:
    """The group as predict reads it; every change is recorded as what would be done."""

    def __init__(self, inner: ScalableGroup, would: list[str]) -> None:
        self._inner, self.would = inner, would
        self.name = inner.name

    def describe(self) -> GroupFacts:
        return self._inner.describe()

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        self.would.append(f"set desired capacity {desired} and MinSize {floor}")

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None:
        self.would.append(f"set MinSize {floor}")

    def write_lease(self, lease: Lease) -> None:
        self.would.append(f"write the lease tag '{lease.encode()}'")


class _ReadOnlyPool:
    def __init__(self, inner: WarmPoolPort, would: list[str]) -> None:
        self._inner, self._would = inner, would

    def describe(self) -> PoolConfiguration | None:
        return self._inner.describe()

    def resize(self, size: int, current: PoolConfiguration) -> None:
        self._would.append(f"set the warm pool's size to {size} (MinSize and MaxGroupPreparedCapacity)")


class _ReadOnlyState:
    def __init__(self, inner: StateStore, would: list[str]) -> None:
        self._inner, self._would = inner, would

    def load(self) -> StoredStateLike:
        return self._inner.load()

    def save(self, document: dict[str, Any], version: str | None) -> None:
        self._would.append(f"record slot {_iso(int(document.get('last_decision_time', 0)))} in the state")


class _SilentNotifier:
    def __init__(self, would: list[str]) -> None:
        self._would = would

    def notify(self, subject: str, body: dict[str, Any]) -> None:
        self._would.append(f"send the notice {subject!r}")


def _read_only(ports: PredictPorts) -> PredictPorts:
    """The same reads; writes become entries of `would`. With these ports a dry run needs
    only read permissions (any read-only credentials)."""
    would: list[str] = []
    return replace(
        ports,
        group=_ReadOnlyGroup(ports.group, would),
        state=_ReadOnlyState(ports.state, would),
        notifier=_SilentNotifier(would),
        warm_pool=None if ports.warm_pool is None else _ReadOnlyPool(ports.warm_pool, would),
    )


def _settle_floor(
    ports: PredictPorts, settings: PredictSettings, clock_now: float, result: PredictResult
) -> FloorReading:
    """Read the group and judge who set its MinSize; give back a floor whose lease has
    expired (or, in forecast-only mode, any floor predict holds); record a MinSize set by
    someone else as the operator's. Returns the group as it stands afterwards."""
    facts = ports.group.describe()
    result.instance_types = facts.instance_types
    lease_seconds = settings.fallback_release_minutes * 60
    reading = read_floor(facts, clock_now, lease_seconds)
    ownership = reading.ownership
    result.group, result.floor_note = reading.group, reading.note
    forecast_only = settings.policy.mode is ScalingMode.FORECAST_ONLY
    if ownership.due(clock_now) or (forecast_only and ownership.due(math.inf)):
        assert ownership.lease is not None
        assert ownership.base is not None
        released = ownership.release()
        ports.group.write_lease(released)
        ports.group.set_floor(ownership.base, reading.group)
        result.floor_released = True
        released = _confirm(ports, result, released, ownership.base)
        result.floor_note = _join(
            result.floor_note,
            f"MinSize {ownership.min_size} -> {ownership.base}: "
            + (
                "forecast-only mode gives the floor back"
                if forecast_only
                else f"the floor's lease expired at {_iso(ownership.lease.until)}"
            ),
        )
        facts = replace(facts, min_size=ownership.base, lease_tag=released.encode())
        reading = read_floor(facts, clock_now, lease_seconds)
        result.group = reading.group
    elif ownership.adopted:
        # Recorded so that the next run need not adopt it again; the judgement does not
        # depend on this write landing (the next run adopts it the same way).
        adopted = facts.min_size
        _confirm(ports, result, Lease(adopted, adopted, adopted, 0, ownership.slot), adopted)
    elif ownership.lease is not None and ownership.lease.pending:
        # The last change's confirmation was lost: MinSize now says whether it landed.
        _confirm(ports, result, ownership.lease, facts.min_size)
    return reading


def _confirm(ports: PredictPorts, result: PredictResult, lease: Lease, min_size: int) -> Lease:
    """Record that MinSize is now `min_size` (the change is done). A failed write is a
    warning, not a fault: the group changed already, and the next run confirms it."""
    confirmed = lease.confirmed(min_size)
    try:
        ports.group.write_lease(confirmed)
    except Exception as error:  # throttling, a tag policy
        result.floor_note = _join(
            result.floor_note,
            f"warning: could not confirm the floor's lease ({type(error).__name__}: {error})",
        )
    return confirmed


def _renewed_lease(
    decision: Decision,
    group: GroupCapacity,
    ownership: Ownership,
    decision_time: int,
    settings: PredictSettings,
    mode: ScalingMode,
) -> Lease | None:
    """The lease this decision writes: whenever it changes the group (the record names the
    slot that acted), and whenever it holds a floor above the operator's MinSize (a renewal:
    without one the floor expires). None where MinSize cannot be trusted, or nothing to hold."""
    if not group.floor_managed:
        return None
    holds = mode is ScalingMode.FORECAST_AND_SCALE and decision.floor > group.min_size
    if not (decision.apply or holds):
        return None
    return Lease(
        floor=decision.floor,
        prior=group.floor,
        base=group.min_size,
        until=decision_time + settings.fallback_release_minutes * 60,
        slot=decision_time if decision.apply else ownership.slot,
    )


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _clock_refusal(now: int, received_at: float | None, settings: PredictSettings) -> str:
    if received_at is None or not settings.event_clock_check:
        return ""
    late = received_at - now
    if late > settings.event_max_delay_seconds:
        return (
            f"stale event: its time {_iso(now)} is {late:.0f} s before the function's clock "
            f"(EVENT_MAX_DELAY_SECONDS {settings.event_max_delay_seconds}); nothing read or changed"
        )
    if -late > settings.event_max_early_seconds:
        return (
            f"early event: its time {_iso(now)} is {-late:.0f} s after the function's clock "
            f"(EVENT_MAX_EARLY_SECONDS {settings.event_max_early_seconds}); nothing read or changed"
        )
    return ""


def _forecast_and_decide(
    now: int,
    decision_time: int,
    settings: PredictSettings,
    ports: PredictPorts,
    state: DecisionState,
    result: PredictResult,
    mode: ScalingMode,
) -> _Forecasted:
    group = result.group
    assert group is not None
    try:
        model = _load_model(ports, ServingBounds(settings.capacity_per_instance))
    except ModelNotFoundError as error:
        raise _missing_model(ports, error, decision_time) from error
    except ModelError as error:
        raise _FallbackError(f"model unavailable: {error}") from error
    metadata = model.metadata
    result.model = manifest_summary(metadata)
    result.lead_time, result.horizon_note = _lead_time(metadata.horizon_steps, settings)

    anchor = decision_time - ANCHOR_OFFSET_STEPS * STEP_SECONDS
    lookback = (HISTORY_STEPS_NEEDED + metadata.horizon_steps + LEVEL_STEPS) * STEP_SECONDS
    ports.archive.corrupt_days.clear()  # the adapter lives while warm: report this run's
    raw_history = _read_history(ports, anchor - lookback, anchor + STEP_SECONDS, now)
    result.corrupt_history = list(ports.archive.corrupt_days)
    # The same validity rules as retraining: a corrupt datapoint is missing, never load.
    # Demand above the ceiling is not a shop's load but a corrupt or forged datapoint:
    # missing data for the features, as impossible values are.
    ceiling = settings.demand_ceiling_factor * metadata.training_demand_max_per_minute
    history, result.implausible_values = drop_impossible_values(
        raw_history,
        {Metric.REQUESTS: ceiling * raw_history.step / 60.0, Metric.BUSIEST_MINUTE: ceiling},
    )
    index = len(history) - 1
    demand = history.demand_per_minute()
    levels = log_level(demand)
    cpu_then = float(history[Metric.CPU][index])
    in_service_then = float(history[Metric.IN_SERVICE][index])
    result.inputs = {
        "demand_per_minute": float(demand[index]),
        "response_time_seconds": float(history[Metric.RESPONSE_TIME][index]),
        "cpu_percent": cpu_then,
        "in_service_at_anchor": in_service_then,
        "errors_5xx": float(history[Metric.ERRORS_5XX][index]),
        "history_steps": float(np.sum(~np.isnan(demand))),
    }
    raw_demand = float(raw_history.demand_per_minute()[index])
    if math.isfinite(raw_demand) and raw_demand > ceiling:
        raise _FallbackError(
            f"RequestCount at the anchor bucket {_iso(anchor)} is {raw_demand:.0f}/min, above the "
            f"sanity ceiling {ceiling:.0f}/min (DEMAND_CEILING_FACTOR {settings.demand_ceiling_factor:g} x "
            f"the 99.9th percentile of the clean demand it was trained on, "
            f"{metadata.training_demand_max_per_minute:.0f}/min)"
        )
    if math.isnan(demand[index]) or math.isnan(levels[index]):
        raise _FallbackError(
            f"no valid RequestCount for the anchor bucket {_iso(anchor)}: metrics missing or stale"
        )

    events = _read_calendar(ports, now, result)
    # Steps of planned events are no normal load: not for the seasonal features, nor for
    # sizing a multiplier event on "same time last week".
    inside_events = event_steps(history.start, len(history), events) if events else None
    features = build_features(history, metadata.horizon_steps, metadata.timezone, inside_events)[index]
    quantile = quantile_for_run(metadata.tuning, settings.policy, settings.shortfall_goal)
    result.headroom_quantile = quantile
    forecast = model.forecast(
        features,
        float(levels[index]),
        quantile.value,
        float(recent_burstiness(history)[index]),
    )
    capacity_per_instance = metadata.capacity_per_instance
    predicted = float(capacity_needed(forecast.demand_upper, capacity_per_instance))
    if not (math.isfinite(forecast.demand_mean) and math.isfinite(predicted)) or predicted < 0:
        raise _FallbackError(f"the forecast is not a usable number ({forecast.demand_upper!r}/min)")
    result.forecast, result.predicted_capacity = forecast, predicted
    result.target_time = anchor + metadata.horizon_steps * STEP_SECONDS

    result.forecast_error = _score_earlier_forecast(
        state, anchor, float(demand[index]), capacity_per_instance
    )
    # CPU is averaged over the instances in service when it was measured, not over the
    # fleet of now: 2 instances at 90 % ten minutes ago need 3, not 11 when 8 serve now.
    # Without the fleet size of the CPU's own bucket the CPU says nothing about the
    # instances needed (the fleet of now may be four times larger): demand alone sizes the
    # floor then, and target tracking on CPU stays the safety net.
    cpu_fleet = in_service_then if math.isfinite(in_service_then) and in_service_then >= 1 else 0.0
    floor = reactive_floor(
        float(demand[index]),
        cpu_then,
        round(cpu_fleet),
        capacity_per_instance,
        settings.policy.target_cpu_percent,
    )
    result.reactive_floor = floor
    window_start = decision_time - settings.policy.scale_in_stabilization_minutes * 60
    recent = [r for t, r in state.recommendations if t > window_start]
    result.planned = _plan_events(
        events,
        inside_events,
        state,
        decision_time,
        anchor,
        demand,
        index,
        capacity_per_instance,
        result,
        ports,
    )
    decision = decide(predicted, group, floor, recent, settings.policy, mode, result.planned)
    # The same hour yesterday and last week, sized up as the forecast is; at least the forecast.
    peak = coming_peak_demand(demand, index, ANCHOR_OFFSET_STEPS + POOL_PLAN_STEPS) * forecast.headroom
    peak_capacity = max(
        predicted, float(capacity_needed(peak, capacity_per_instance)) if math.isfinite(peak) else 0.0
    )
    return _Forecasted(decision, anchor, forecast, capacity_per_instance, instances_for(peak_capacity))


def _lead_time(model_horizon_steps: int, settings: PredictSettings) -> tuple[dict[str, Any], str]:
    """How far past the decision the model forecasts against how soon new capacity serves.
    A model trained before a warm pool was removed (or a lead time raised) forecasts too
    short: it is still used, since the fallback would leave the shop to target tracking
    until the next retraining, but its decisions come late and the log line says so."""
    forecast_minutes = (model_horizon_steps - ANCHOR_OFFSET_STEPS) * STEP_SECONDS // 60
    needed_minutes = (horizon_steps_for(settings.ready_minutes) - ANCHOR_OFFSET_STEPS) * STEP_SECONDS // 60
    lead_time = {
        "ready_minutes": settings.ready_minutes,
        "ready_from": settings.ready_from,
        "model_horizon_minutes": forecast_minutes,
    }
    if forecast_minutes >= needed_minutes:
        return lead_time, ""
    return lead_time, (
        f"warning: the model forecasts {forecast_minutes} minutes past the decision, new capacity "
        f"needs {settings.ready_minutes} ({settings.ready_from}): scale-outs come up to "
        f"{needed_minutes - forecast_minutes} minutes late until the next retraining"
    )


EVENT_NOTICE_SECONDS = 86400
"""An event that needs more than MaxSize is noticed once, when its lead window opens
within a day: time to raise MaxSize or the instance quota."""


def _read_calendar(ports: PredictPorts, now: int, result: PredictResult) -> tuple[PlannedEvent, ...]:
    """The operator's planned events. An unreadable or invalid calendar is ignored with a
    warning: decided as without events."""
    if ports.calendar is None:
        return ()
    try:
        return ports.calendar.events(now).events
    except CalendarError as error:
        result.calendar_warning = f"calendar ignored, decided as without events: {error}"[:500]
        return ()


def _plan_events(
    events: tuple[PlannedEvent, ...],
    inside_events: BoolArray | None,
    state: DecisionState,
    decision_time: int,
    anchor: int,
    demand: FloatArray,
    index: int,
    capacity_per_instance: float,
    result: PredictResult,
    ports: PredictPorts,
) -> PlannedFloor | None:
    """What the operator's planned events ask of this decision, and the notices due."""
    if not events:
        return None

    def normal_demand(step_time: int) -> float:
        # The event's own rise has not reached it, nor an earlier event's; only buckets
        # visible now.
        return normal_load(demand, index + (step_time - anchor) // STEP_SECONDS, index, inside_events)

    assert result.target_time is not None
    group = result.group
    assert group is not None
    quota: tuple[int, str] | None = None
    for event in upcoming(events, decision_time, EVENT_NOTICE_SECONDS):
        if event.key in state.event_notices:
            continue
        needs = peak_capacity(event, normal_demand, capacity_per_instance)
        if needs > group.max_size:
            result.event_notices.append((event, needs, f"MaxSize is {group.max_size}"))
            continue
        if quota is None and ports.quota is not None and not result.quota_warning:
            quota = _read_quota(ports.quota, result)
        if quota is not None and needs > quota[0]:
            result.event_notices.append((event, needs, quota[1]))
    return planned_floor(events, decision_time, result.target_time, normal_demand, capacity_per_instance)


def _read_quota(quota: InstanceQuota, result: PredictResult) -> tuple[int, str] | None:
    """Read once per run, and only for an event that fits MaxSize; a fault is a warning."""
    try:
        return quota.instances_allowed(result.instance_types)
    except Exception as error:  # QuotaUnknownError, or anything an adapter raises
        result.quota_warning = f"instance quota not checked before the event: {error}"[:300]
        return None


def _notify_events(ports: PredictPorts, result: PredictResult) -> None:
    """One notice per event that will need more than MaxSize or the instance quota
    allows; its key is in the state this run claimed its slot with, so no later run sends
    it again (at most once: a failed publish is a NotificationErrors, not retried). The
    body's event_notices say which limit."""
    for event, needs, limit in result.event_notices:
        passed = limit if limit.startswith("MaxSize") else "over the instance quota"
        _notify(
            ports, result, f"Saleor predictive scaling: event {event.name} needs {needs} instances, {passed}"
        )


def _missing_model(ports: PredictPorts, error: ModelNotFoundError, decision_time: int) -> _FallbackError:
    """No manifest: warming up while retrain's notice holds, otherwise a fault (a deleted
    manifest, a retrain that never ran): the fallback, and its alarm."""
    try:
        notice = ports.models.warm_up()
    except Exception as unreadable:  # S3 faults, a forged notice: no notice
        return _FallbackError(f"model unavailable: {error}; warm-up notice unreadable: {unreadable}")
    if notice is None:
        return _FallbackError(f"model unavailable: {error}")
    invalid = notice.invalid_at(decision_time)
    if invalid:
        return _FallbackError(f"model unavailable: {error}; {invalid}")
    return _WarmingUpError(
        f"warming up, no model yet: the history spans {notice.history_days:.1f} days, the first model "
        f"needs {notice.needed_days:g} and can be trained by the first nightly retrain after "
        f"{_iso(notice.first_model_after)}",
        notice,
    )


def _fall_back(
    result: PredictResult,
    reason: str,
    decision_time: int,
    ports: PredictPorts,
    state: DecisionState,
    version: str | None,
    ownership: Ownership,
    status: Status = Status.FALLBACK,
) -> PredictResult:
    """Nothing is sized on this run and nothing is changed: the floor predict raised stays
    until its lease expires (a short outage of the model or metrics must not drop capacity
    that serves the shop), and then the first run, or the watchdog, gives it back."""
    result.status = status
    next_state = DecisionState(
        last_decision_time=decision_time,
        recommendations=state.recommendations,
        forecasts=state.forecasts,
        last_decision={"time": _iso(decision_time), "status": status.value, "reason": reason},
        event_notices=_live_notices(state, decision_time),
    )
    if not _claim_slot(ports, next_state, version, result):
        return result
    detail = ""
    if ownership.lease is not None and ownership.base is not None and ownership.min_size > ownership.base:
        result.lease_until = ownership.lease.until
        detail = (
            f"; the floor MinSize {ownership.min_size} is leased until {_iso(ownership.lease.until)}, "
            f"then goes back to the operator's MinSize {ownership.base} unless a decision renews it"
        )
    result.reason = f"{reason}; holding capacity, reactive scaling stays in charge{detail}"
    return result


def _claim_slot(
    ports: PredictPorts, next_state: DecisionState, version: str | None, result: PredictResult
) -> bool:
    try:
        ports.state.save(next_state.to_document(), version)
    except StateConflictError as error:
        result.status = Status.DUPLICATE
        result.decision = None
        result.reason = f"another run decided slot {_iso(result.decision_time)} concurrently ({error})"
        return False
    return True


def _notify(ports: PredictPorts, result: PredictResult, subject: str) -> None:
    """The change stands whether or not the notice goes out; a failed notice is reported
    (NotificationErrors), never turned into a fault that says nothing was scaled."""
    try:
        ports.notifier.notify(subject, result.log_record())
    except Exception as error:  # SNS faults, throttling, a deleted topic, a KMS denial
        result.notification_error = f"{type(error).__name__}: {error}"


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


def _score_earlier_forecast(
    state: DecisionState, anchor: int, demand: float, capacity_per_instance: float
) -> float | None:
    earlier = state.forecasts.get(anchor)
    if earlier is None:
        return None
    return float(earlier) - float(capacity_needed(demand, capacity_per_instance))


def _next_state(
    state: DecisionState,
    decision_time: int,
    settings: PredictSettings,
    decision: Decision,
    forecasted: _Forecasted,
    result: PredictResult,
) -> DecisionState:
    window_start = decision_time - settings.policy.scale_in_stabilization_minutes * 60
    recommendations = [(t, r) for t, r in state.recommendations if t > window_start]
    recommendations.append((decision_time, decision.window_entry))
    forecasts = {t: value for t, value in state.forecasts.items() if t > forecasted.anchor}
    if result.target_time is not None:
        # The mean (not the sized-up forecast) is what the error metric should judge.
        forecasts[result.target_time] = round(
            float(capacity_needed(forecasted.forecast.demand_mean, forecasted.capacity_per_instance)), 4
        )
    notices = _live_notices(state, decision_time)
    notices.update({event.key: event.end for event, _, _ in result.event_notices})
    if len(notices) > MAX_EVENT_NOTICES:
        # Events removed from the calendar before they ended leave keys behind: keep the
        # latest-ending ones, so the state stays within what parse_state accepts.
        kept = sorted(notices.items(), key=lambda item: item[1])[-MAX_EVENT_NOTICES:]
        notices = dict(kept)
    return DecisionState(
        last_decision_time=decision_time,
        recommendations=recommendations,
        forecasts=forecasts,
        last_decision={
            "time": _iso(decision_time),
            "target": decision.target,
            "floor": decision.floor,
            "action": decision.action.value,
            "applied": decision.apply,
        },
        event_notices=notices,
    )


def _live_notices(state: DecisionState, decision_time: int) -> dict[str, int]:
    """The notices of events not yet ended: an ended event's entry goes with it."""
    return {key: end for key, end in state.event_notices.items() if end > decision_time}


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)
