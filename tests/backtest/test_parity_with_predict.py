"""The backtest decides exactly as the predict function: the same history, model and group
state give the same forecast target and the same decision, run after run (stabilization
window included)."""

from __future__ import annotations

import numpy as np
import pytest

from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.runner import prepare_trace
from saleor_scaling.features import build_features, log_level
from saleor_scaling.lease import Lease
from saleor_scaling.policy import GroupCapacity, GroupFacts
from saleor_scaling.predict_service import run_predict
from saleor_scaling.series import Metric
from saleor_scaling.settings import PolicySettings, ScalingMode
from saleor_scaling.simulation.simulator import GroupSettings, SimulatedGroup, TargetTracking, simulate
from saleor_scaling.simulation.strategies import PredictiveController
from saleor_scaling.training import TrainingConfig, build_model
from tests.backtest.helpers import small_config, synthetic_trace
from tests.unit.fakes import memory_ports, shop_settings


class Group:
    name = "saleor-api"

    def __init__(self, desired: int) -> None:
        self.desired = desired
        self.min_size = 1
        self.lease: Lease | None = None

    def describe(self) -> GroupFacts:
        return GroupFacts(
            self.min_size, 10, self.desired, self.desired, self.lease.encode() if self.lease else None
        )

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        self.desired, self.min_size = desired, floor

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None:
        self.min_size = floor

    def write_lease(self, lease: Lease) -> None:
        # Nobody but predict changes this group's MinSize: the base never moves.
        assert lease.base == 1, lease
        self.lease = lease


@pytest.mark.parametrize("holds_floor", [True, False])
def test_controller_decides_as_run_predict(holds_floor: bool) -> None:
    config = small_config()
    trace = prepare_trace(synthetic_trace(10, seed=4), config)
    group_settings = config.group_settings()
    record = simulate(
        trace.demand, group_settings, TargetTracking(config.target_tracking_settings(with_predictive=False))
    )
    history = metric_history(trace.start, record, group_settings)
    horizon = config.horizon
    train_end = history.start + 8 * 86400
    model = build_model(
        history.window(history.start, train_end), TrainingConfig(horizon, n_estimators=8, max_depth=6), 1000.0
    )
    blob = model.ensemble.to_npz()
    metadata = model.metadata.with_artifact(blob, "models/model.npz")
    policy = PolicySettings(
        mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1, window_holds_reactive_floor=holds_floor
    )
    settings = shop_settings(policy)
    group = Group(desired=2)
    ports = memory_ports(history, group, blob, metadata)

    # The backtest's side: forecasts for every anchor in one batch, CPU per minute.
    features = build_features(history, horizon, "UTC")
    levels = log_level(history.demand_per_minute())
    upper = np.full(len(history), np.nan)
    capacity = np.full(len(history), np.nan)
    anchors = np.flatnonzero(np.isfinite(levels))
    forecasts = model.forecast_rows(features[anchors], levels[anchors], policy.headroom_quantile)
    upper[anchors] = [f.demand_upper for f in forecasts]
    capacity[anchors] = 1000.0
    controller = PredictiveController(
        history.start, history.demand_per_minute(), upper, capacity, policy, 1, 10
    )
    cpu_per_minute = np.repeat(history[Metric.CPU], 5).tolist()
    simulated = SimulatedGroup(GroupSettings(boot_delay_minutes=0), initial=2)
    # Both sides judge CPU against the fleet in service when it was measured: the history's.
    simulated.served = np.repeat(np.rint(history[Metric.IN_SERVICE]), 5).astype(int).tolist()

    first_minute = (train_end - history.start) // 60 + 6 * 60  # a day of runs after training
    applied = floor_raised = 0
    for minute in range(first_minute, first_minute + 24 * 60, 5):
        now = history.start + minute * 60 + 17  # EventBridge fires a few seconds late
        result = run_predict(now, settings, ports)
        controller.decide(minute, simulated, cpu_per_minute)
        assert result.decision is not None
        assert controller.log.targets[-1] == result.decision.target
        assert simulated.desired == group.desired
        assert simulated.floor == group.min_size
        applied += result.decision.apply
        floor_raised += result.decision.window_entry < result.decision.recommended
    assert applied >= 4  # the day had scale-outs and scale-ins to agree on
    # Without the floor in the window, runs raised to their floor were compared too.
    assert holds_floor or floor_raised > 0
