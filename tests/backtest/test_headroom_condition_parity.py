"""Predict and the backtest's walk-forward size a forecast with the same recent burstiness:
one function (`headroom.recent_burstiness`) computes it on predict's history, which ends at
its anchor, and on the whole history the walk-forward forecasts every anchor from."""

from __future__ import annotations

import numpy as np

from saleor_scaling.backtest.frontier import quantile_uppers
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.runner import prepare_trace
from saleor_scaling.backtest.walkforward import anchor_for_decision, walk_forward
from saleor_scaling.headroom import QUANTILE_GRID, Basis, Condition, HeadroomTable
from saleor_scaling.model import ForecastModel
from saleor_scaling.predict_service import run_predict
from saleor_scaling.settings import PolicySettings, ScalingMode
from saleor_scaling.simulation.simulator import TargetTracking, simulate
from saleor_scaling.training import TrainingConfig, build_model
from tests.backtest.helpers import small_config, synthetic_trace
from tests.backtest.test_parity_with_predict import Group
from tests.unit.fakes import memory_ports, shop_settings

RISING = tuple(1.0 + 0.5 * (q - 0.5) for q in QUANTILE_GRID)
"""1.0 at the 0.5 quantile to 1.245 at 0.99: sized up by more than 1 at 0.6 (1.05)."""


def test_predict_and_the_walk_forward_size_with_the_same_burstiness() -> None:
    config = small_config(headroom_condition=Condition.RECENT_BURSTINESS)
    trace = prepare_trace(synthetic_trace(6, seed=5), config)
    group_settings = config.group_settings()
    record = simulate(
        trace.demand, group_settings, TargetTracking(config.target_tracking_settings(with_predictive=False))
    )
    history = metric_history(trace.start, record, group_settings)
    table = HeadroomTable((), (RISING,), 300, Basis.BUSIEST_MINUTE, Condition.RECENT_BURSTINESS)
    model = build_model(
        history.window(history.start, history.start + 3 * 86400),
        TrainingConfig(config.horizon, n_estimators=5, max_depth=6),
        1000.0,
        headroom=table,
    )

    def every_night_this_model(*_args: object) -> ForecastModel:
        return model

    settings = config.walk_forward_settings("UTC")
    forest = walk_forward(history, settings, trainer=every_night_this_model, workers=1)

    blob = model.ensemble.to_npz()
    metadata = model.metadata.with_artifact(blob, "models/model.npz")
    policy = PolicySettings(mode=ScalingMode.FORECAST_ONLY, headroom_quantile=settings.headroom_quantile)
    predict_settings = shop_settings(policy)
    ports = memory_ports(history, Group(desired=2), blob, metadata)
    headrooms = []
    for minute in range(4 * 1440, 5 * 1440, 25):
        now = history.start + minute * 60 + 17
        result = run_predict(now, predict_settings, ports)
        assert result.forecast is not None
        anchor = anchor_for_decision(history, now)
        assert result.forecast.demand_mean == forest.mean[anchor]
        assert result.forecast.demand_upper == forest.upper[anchor]
        headrooms.append(result.forecast.headroom)
    # Not vacuous: the burstiness moved the sizing from run to run (the table alone, one
    # band, would size every forecast by the same 1.05).
    assert len({round(h, 9) for h in headrooms}) > 10
    assert min(headrooms) > 1.05


def test_the_sweep_resizes_scaled_tables_as_the_walk_forward_sized() -> None:
    config = small_config(days=4.0, headroom_condition=Condition.RECENT_BURSTINESS)
    trace = prepare_trace(synthetic_trace(4.0, seed=2), config)
    group = config.group_settings()
    reactive = simulate(trace.demand, group, TargetTracking(config.target_tracking_settings(False)))
    history = metric_history(trace.start, reactive, group)
    forest = walk_forward(history, config.walk_forward_settings("UTC"))
    tables = [table for table in forest.headrooms.values() if table is not None]
    assert tables, "the synthetic trace must train at least one night"
    assert all(table.scaled_by == Condition.RECENT_BURSTINESS for table in tables)
    q = config.policy.headroom_quantile
    uppers = quantile_uppers(forest, (q,))
    assert np.array_equal(uppers[q], forest.upper, equal_nan=True)
