"""Why ours sits above the clairvoyant-level reference on a coarse trace (issue 23, item 4).

Controlled runs on one trace: the nightly models are trained once (the walk-forward, as
the backtest trains them), then ours' controller is replayed with one cause removed at a
time, each as a curve (the headroom quantile for ours, a multiple of a perfect forecast
otherwise) read at equal shortfall on its lower hull, as the sweep reads frontiers:

  ours                  the walk-forward forecasts, HeadroomQuantile 0.5-0.98
  perfect-step          the observed value of the step the model is trained for (the coarse
                        unit's mean, anchor + horizon): removes the forecast's error
  perfect-busiest       the true busiest minute of that step: also the headroom measured
                        on step means
  perfect-own-step      each run's own next step's busiest minute, not the one far step its
                        coarse anchor serves: also the shared horizon
  ... window 5          the same with a 5-minute scale-in window: also the window's hold
  ours, window 5        the walk-forward forecasts with a 5-minute window

each at MaxScaleInStep 1 (the default) and 0 (target tracking scales in). Usage:

  PYTHONPATH=src python scripts/coarse_decomposition.py nyc-taxi --days 30
  PYTHONPATH=src python scripts/coarse_decomposition.py /tmp/nasa_hourly.csv \
      --outage 1995-07-28T13:00/1995-08-03T05:00

(an hourly NASA 1995 is the shared per-minute trace summed per hour, built outside the
project). Figures: docs/backtest.md, "Why ours sits above the reference on coarse traces".
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from saleor_scaling.backtest.bounds import clairvoyant_level_bound
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.frontier import (
    SweepPoint,
    at_reactive_target,
    pareto,
    quantile_uppers,
    read_at_share,
)
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.report import strategy_figures
from saleor_scaling.backtest.runner import observed_settings, prepare_trace
from saleor_scaling.backtest.traces import load_trace, parse_outage
from saleor_scaling.backtest.walkforward import walk_forward
from saleor_scaling.simulation.simulator import TargetTracking, simulate
from saleor_scaling.simulation.strategies import PredictiveController

QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
MULTIPLES = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.45, 1.6)
SHARES = (0.005, 0.01, 0.0185, 0.03)


class OwnStepController(PredictiveController):
    """Sizes each run for its own next step (`own[decision step + 1]`), with the coarse
    anchor's floor and everything else as predict."""

    own: list[float]

    def decide(self, minute, group, cpu):  # type: ignore[no-untyped-def]
        anchor = self.observation.anchor(self.start, self.start + minute * 60)
        if 0 <= anchor < len(self.upper) and math.isfinite(self.upper[anchor]):
            saved, target = self.upper[anchor], minute // 5 + 1
            self.upper[anchor] = self.own[target] if target < len(self.own) else math.nan
            try:
                super().decide(minute, group, cpu)
            finally:
                self.upper[anchor] = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--days", type=float)
    parser.add_argument("--outage", action="append", default=[])
    args = parser.parse_args()
    config = BacktestConfig(days=args.days, workers=1)
    trace = prepare_trace(load_trace(args.trace, outages=tuple(map(parse_outage, args.outage))), config)
    demand, group = trace.demand, config.group_settings()
    reactive = simulate(demand, group, TargetTracking(config.target_tracking_settings(with_predictive=False)))
    observation = Observation.of_trace(trace)
    history = observation.observe(metric_history(trace.start, reactive, group))
    oracle = oracle_schedule(demand, group)
    forest = walk_forward(history, observed_settings(config, trace, observation), workers=1)
    assert forest.first_model_time is not None, "no nightly model: too little history"
    window = slice((forest.first_model_time - trace.start) // 60 + 5, len(demand))
    step_demand = history.demand_per_minute()
    steps, horizon = len(step_demand), observation.horizon_steps(config.horizon)
    buckets = demand[: steps * 5].reshape(steps, 5)
    busiest = np.nanmax(np.where(np.isnan(buckets), -np.inf, buckets), axis=1)
    busiest[~np.isfinite(busiest)] = np.nan
    served = np.isfinite(forest.mean)

    def ahead(values: np.ndarray) -> np.ndarray:
        out = np.full(steps, np.nan)
        out[: steps - horizon] = values[horizon:]
        return np.where(served, out, np.nan)

    def point(record, knob: float) -> SweepPoint:  # type: ignore[no-untyped-def]
        fig = strategy_figures(
            "ours",
            demand,
            record.serving,
            record.billed,
            0,
            config.capacity_per_instance,
            window,
            oracle.billed,
        )
        return SweepPoint(
            "ours", "k", knob, 0, fig.under_provisioned_share, 0.0, fig.instance_hours_vs_oracle
        )

    def run(
        upper: np.ndarray, step: int, window_minutes: int, own: np.ndarray | None, knob: float
    ) -> SweepPoint:
        ours = at_reactive_target(config, 70.0, 0.6, window_minutes, step)
        kind = PredictiveController if own is None else OwnStepController
        controller = kind(
            trace.start,
            step_demand,
            upper,
            forest.capacity * ours.capacity_ratio,
            ours.policy,
            config.min_size,
            config.max_size,
            observation,
        )
        if isinstance(controller, OwnStepController) and own is not None:
            controller.own = own.tolist()
        return point(simulate(demand, group, TargetTracking(ours.tracking), controller), knob)

    uppers = quantile_uppers(forest, QUANTILES)
    perfect_step, perfect_busiest = ahead(step_demand), ahead(busiest)
    ones = np.where(served, 1.0, np.nan)
    for step in (1, 0):
        curves = {
            "ours": [run(uppers[q], step, 30, None, q) for q in QUANTILES],
            "ours, window 5": [run(uppers[q], step, 5, None, q) for q in QUANTILES],
            "perfect-step": [run(perfect_step * m, step, 30, None, m) for m in MULTIPLES],
            "perfect-busiest": [run(perfect_busiest * m, step, 30, None, m) for m in MULTIPLES],
            "perfect-own-step": [run(ones, step, 30, busiest * m, m) for m in MULTIPLES],
            "perfect-own-step, window 5": [run(ones, step, 5, busiest * m, m) for m in MULTIPLES],
        }
        for name, points in curves.items():
            front = pareto(points)
            readings = []
            for share in SHARES:
                reading = read_at_share(front, share)
                readings.append("-" if reading is None else f"{reading[0]:.3f}")
            print(f"MaxScaleInStep {step}  {name:<28}" + "".join(f"{r:>8}" for r in readings), flush=True)
    for share in SHARES:
        bound = clairvoyant_level_bound(demand, group, oracle.billed, share, window, config.horizon)
        if bound is not None:
            print(f"reference at {share:.2%}: {bound.instance_hours_vs_oracle:.3f}", flush=True)
    print("columns: instance-hours vs oracle at", ", ".join(f"{s:.2%}" for s in SHARES), "short")


if __name__ == "__main__":
    main()
