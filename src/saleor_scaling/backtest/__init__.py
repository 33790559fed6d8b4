"""Backtest of the predictive scaling policy on real traces (issue 6).

A trace's demand drives a simulated Auto Scaling group at 1-minute resolution under four
strategies side by side: reactive target tracking as AWS implements it, the predict
function's Random Forest (retrained every simulated night on the past only) plus target
tracking, a seasonal-naive forecast with the same policy plus target tracking, and the
oracle that knows the future. The predictive strategies call the very functions predict
and the nightly job call (`build_features`, `build_model`, `ForecastModel.forecast_rows`,
`capacity_needed`, `reactive_floor`, `decide`), so training, serving and backtest cannot
drift apart.

    from saleor_scaling.backtest import BacktestConfig, load_trace, plot, run_backtest

    report = run_backtest(load_trace("nasa"), BacktestConfig())
    print(report.table())
    report.to_json()            # figures, targets, configuration, timings
    plot(report, "nasa.png")

Command line: ``saleor-backtest --help`` (or ``python -m saleor_scaling.backtest``).
"""

from saleor_scaling.backtest.config import STRATEGIES, BacktestConfig
from saleor_scaling.backtest.oracle import OracleSchedule, oracle_schedule
from saleor_scaling.backtest.plot import plot
from saleor_scaling.backtest.report import BacktestReport, StrategyFigures, TargetCheck
from saleor_scaling.backtest.runner import prepare_trace, run_backtest
from saleor_scaling.backtest.traces import Trace, TraceError, load_trace, shared_dir, traces_dir
from saleor_scaling.backtest.walkforward import WalkForward, WalkForwardSettings, walk_forward
from saleor_scaling.simulation.simulator import (
    GroupSettings,
    SimulatedGroup,
    SimulationRecord,
    TargetTracking,
    TargetTrackingSettings,
    simulate,
)
from saleor_scaling.simulation.strategies import PredictiveController

__all__ = [
    "STRATEGIES",
    "BacktestConfig",
    "BacktestReport",
    "GroupSettings",
    "OracleSchedule",
    "PredictiveController",
    "SimulatedGroup",
    "SimulationRecord",
    "StrategyFigures",
    "TargetCheck",
    "TargetTracking",
    "TargetTrackingSettings",
    "Trace",
    "TraceError",
    "WalkForward",
    "WalkForwardSettings",
    "load_trace",
    "oracle_schedule",
    "plot",
    "prepare_trace",
    "run_backtest",
    "shared_dir",
    "simulate",
    "traces_dir",
    "walk_forward",
]
