"""A real trace end to end: the NAB ELB RequestCount (14 days, 5-minute steps).

The full NASA run (60 nights of training) is a benchmark, not a test."""

from __future__ import annotations

import json

import numpy as np

from saleor_scaling.backtest import BacktestConfig, load_trace, run_backtest
from saleor_scaling.backtest.peers import PEERS
from saleor_scaling.backtest.traces import TRACE_FILES
from tests.conftest import require_trace


def test_nab_elb_backtest_runs_every_strategy() -> None:
    require_trace(TRACE_FILES["nab-elb"])
    report = run_backtest(load_trace("nab-elb"), BacktestConfig(n_estimators=10))
    figures = report.figures
    assert list(figures) == ["reactive", "predictive", "seasonal-naive", *PEERS, "oracle"]
    oracle = figures["oracle"]
    # The oracle misses only minutes that need more than MaxSize instances.
    assert oracle.under_provisioned_minutes <= report.trace["minutes_needing_more_than_max_size"]
    for name, fig in figures.items():
        assert fig.under_provisioned_share >= oracle.under_provisioned_share, name
        assert fig.minutes == oracle.minutes
    assert report.walk_forward["nights_trained"] >= 5
    forecast = figures["predictive"].forecast
    assert forecast is not None
    assert forecast.rows > 1000
    assert np.isfinite(forecast.mae)
    assert np.isfinite(forecast.seasonal_naive_mae)
    document = report.to_json()
    json.dumps(document, allow_nan=False)
    assert "Acceptance targets" in report.table()
    # A noisy trace: even sizing on the level known in advance costs well above the oracle.
    bound = report.level_bound
    assert bound is not None
    assert bound.under_provisioned_share <= bound.under_limit
    assert bound.under_limit == 0.2 * figures["reactive"].under_provisioned_share
    assert bound.instance_hours_vs_oracle > 1.15
    assert document["level_bound"]["instance_hours_vs_oracle"] == round(bound.instance_hours_vs_oracle, 6)
