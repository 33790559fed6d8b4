"""Cost against shortfall, not one point: every strategy's knob swept (`--sweep`).

Each strategy trades instance-hours for fewer under-provisioned minutes with one knob:

* predictive RF + reactive: `HeadroomQuantile`. The nightly models are trained once (the
  expensive part); each quantile re-sizes the same mean forecasts with each serving
  model's own headroom table (`ForecastModel.forecast_rows` does exactly
  mean x `HeadroomTable.multipliers(mean, quantile)`; a test checks the default quantile
  reproduces the walk-forward's sizing);
* reactive: the target tracking target (CPU and requests per target lowered together);
* AWS predictive scaling (both forecasts): the TargetValue, and the SchedulingBufferTime;
* PHPA and Crane: the HPA target; Crane also its margin fraction.

Every point is judged like the report (`report.strategy_figures`, the evaluated window).
A strategy's frontier is its Pareto-optimal points. The limits drawn with them: the oracle
(never short, the least cost) and the clairvoyant-level bound (`bounds`) at a range of
under-provisioning limits, the best any sizing from a perfect forecast of the level does.

`equal_shortfall`: how many instance-hours each peer's frontier needs to be as rarely short
as our default point (interpolated between its neighbouring frontier points, linearly in
the under-provisioned share), and how often it is short at our default cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from saleor_scaling.backtest.bounds import clairvoyant_level_bound
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.peers import COLOURS as PEER_COLOURS
from saleor_scaling.backtest.peers import LABELS as PEER_LABELS
from saleor_scaling.backtest.peers import PeerSettings, run_peer
from saleor_scaling.backtest.report import scaling_statement, strategy_figures
from saleor_scaling.backtest.runner import observed_settings, prepare_trace
from saleor_scaling.backtest.simulator import SimulationRecord, TargetTracking, simulate
from saleor_scaling.backtest.strategies import PredictiveController
from saleor_scaling.backtest.traces import Trace
from saleor_scaling.backtest.walkforward import WalkForward, walk_forward
from saleor_scaling.model import ForecastModel
from saleor_scaling.series import FloatArray, MetricHistory
from saleor_scaling.training import TrainingConfig, TrainingRows, train_as_nightly_job

HEADROOM_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
REACTIVE_CPU_TARGETS = (70.0, 60.0, 50.0, 40.0, 30.0)
TARGET_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
AWS_BUFFERS_SECONDS = (600, 900)
CRANE_MARGINS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75)
PHPA_SMOOTHINGS = ((0.5, 0.5, 0.5), (0.3, 0.05, 0.3), (0.1, 0.01, 0.1))
"""Holt-Winters alpha, beta, gamma tried besides PHPA's documented example (0.9 each)."""
BOUND_LIMITS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)

SWEPT = ("predictive", "reactive", "aws-predictive-perfect", "aws-predictive-patterns", "phpa", "crane-dsp")
LABELS = {
    "predictive": "predictive RF + reactive (ours)",
    "reactive": "reactive target tracking",
    **{name: PEER_LABELS[name] for name in SWEPT if name in PEER_LABELS},
}
COLOURS = {"predictive": "tab:blue", "reactive": "tab:red", **PEER_COLOURS}


@dataclass(frozen=True)
class SweepPoint:
    strategy: str
    knob: str
    value: float
    under_provisioned_minutes: int
    under_provisioned_share: float
    instance_hours: float
    instance_hours_vs_oracle: float
    default: bool = False


@dataclass
class Sweep:
    trace: str
    days: float
    evaluated_minutes: int
    oracle_instance_hours: float
    points: list[SweepPoint]
    bound_curve: list[tuple[float, float]]
    """(under-provisioned share, instance-hours vs oracle) of the clairvoyant-level bound."""
    timings: dict[str, float] = field(default_factory=dict)
    scaling: str = ""
    """What was done to the trace's counts (`report.scaling_statement`)."""

    def frontier(self, strategy: str) -> list[SweepPoint]:
        return pareto([p for p in self.points if p.strategy == strategy])

    def ours(self) -> SweepPoint | None:
        return next((p for p in self.points if p.strategy == "predictive" and p.default), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "days": self.days,
            "evaluated_minutes": self.evaluated_minutes,
            "oracle_instance_hours": self.oracle_instance_hours,
            "scaling": self.scaling,
            "points": [asdict(p) for p in self.points],
            "bound_curve": [
                {"under_provisioned_share": u, "instance_hours_vs_oracle": c} for u, c in self.bound_curve
            ],
            "equal_shortfall": [asdict(row) for row in equal_shortfall(self)],
            "timings_seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


def pareto(points: list[SweepPoint]) -> list[SweepPoint]:
    """The points no other point beats on both cost and shortfall, by rising cost."""
    ordered = sorted(points, key=lambda p: (p.instance_hours_vs_oracle, p.under_provisioned_share))
    front: list[SweepPoint] = []
    for point in ordered:
        if not front or point.under_provisioned_share < front[-1].under_provisioned_share:
            front.append(point)
    return front


def cost_at_share(front: list[SweepPoint], share: float) -> float | None:
    """Instance-hours vs oracle the frontier needs to be short no more than `share` of the
    time (linear between neighbours); None if no swept point is that rarely short."""
    if not front:
        return None
    reached = [p for p in front if p.under_provisioned_share <= share + 1e-12]
    if not reached:
        return None
    best = reached[0]
    index = front.index(best)
    if index == 0 or best.under_provisioned_share >= share - 1e-12:
        return best.instance_hours_vs_oracle
    before = front[index - 1]
    span = before.under_provisioned_share - best.under_provisioned_share
    weight = (before.under_provisioned_share - share) / span if span > 0 else 1.0
    return before.instance_hours_vs_oracle + weight * (
        best.instance_hours_vs_oracle - before.instance_hours_vs_oracle
    )


def share_at_cost(front: list[SweepPoint], cost: float) -> float | None:
    """Under-provisioned share of the frontier at `cost` (linear between neighbours); None
    if every swept point costs more. Where the sweep ends below `cost`, its last point's
    share: an upper bound (more capacity would be short less often)."""
    affordable = [p for p in front if p.instance_hours_vs_oracle <= cost + 1e-12]
    if not affordable:
        return None
    best = affordable[-1]
    index = front.index(best)
    if index + 1 >= len(front):
        return best.under_provisioned_share
    after = front[index + 1]
    span = after.instance_hours_vs_oracle - best.instance_hours_vs_oracle
    weight = (cost - best.instance_hours_vs_oracle) / span if span > 0 else 0.0
    return best.under_provisioned_share + weight * (
        after.under_provisioned_share - best.under_provisioned_share
    )


@dataclass(frozen=True)
class EqualShortfallRow:
    strategy: str
    default_under_provisioned_share: float | None
    default_instance_hours_vs_oracle: float | None
    instance_hours_vs_oracle_at_our_shortfall: float | None
    """None: no swept setting was as rarely short as ours."""
    under_provisioned_share_at_our_cost: float | None
    """None: every swept setting cost more than ours."""


def equal_shortfall(sweep: Sweep) -> list[EqualShortfallRow]:
    ours = sweep.ours()
    rows = []
    for strategy in SWEPT:
        points = [p for p in sweep.points if p.strategy == strategy]
        if not points:
            continue
        default = next((p for p in points if p.default), None)
        front = pareto(points)
        rows.append(
            EqualShortfallRow(
                strategy,
                default.under_provisioned_share if default else None,
                default.instance_hours_vs_oracle if default else None,
                cost_at_share(front, ours.under_provisioned_share) if ours else None,
                share_at_cost(front, ours.instance_hours_vs_oracle) if ours else None,
            )
        )
    return rows


def quantile_uppers(
    forest: WalkForward, models: list[ForecastModel], quantiles: tuple[float, ...]
) -> dict[float, FloatArray]:
    """The walk-forward's sizing at other headroom quantiles, from the same nightly models
    and mean forecasts (`models`: the trained nights' models, in order)."""
    uppers = {q: np.full(len(forest.mean), np.nan) for q in quantiles}
    trained = iter(models)
    model: ForecastModel | None = None
    for night in forest.nights:
        if night.trained:
            model = next(trained)
        if model is None or night.first_anchor >= night.end_anchor:
            continue
        anchors = np.arange(night.first_anchor, night.end_anchor)
        anchors = anchors[np.isfinite(forest.mean[anchors])]
        if not len(anchors):
            continue
        means = forest.mean[anchors]
        for q in quantiles:
            if model.headroom is None:
                raise ValueError("a model without a headroom table: re-forecast per tree instead")
            uppers[q][anchors] = means * model.headroom.multipliers(means, q)
    return uppers


def _recording_trainer(models: list[ForecastModel]) -> Callable[..., ForecastModel]:
    def trainer(
        window: MetricHistory,
        rows: TrainingRows,
        config: TrainingConfig,
        holdout_days: int,
        capacity: float,
        learned: bool,
    ) -> ForecastModel:
        model = train_as_nightly_job(window, rows, config, holdout_days, capacity, learned)
        models.append(model)
        return model

    return trainer


def run_sweep(
    trace: Trace,
    config: BacktestConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Sweep:
    """Every strategy at every knob setting on `trace`, judged on the evaluated window."""
    import time

    config = config or BacktestConfig()
    say = progress or (lambda _message: None)
    timings: dict[str, float] = {}
    scaled = prepare_trace(trace, config)
    demand = scaled.demand
    group = config.group_settings()
    begin = time.perf_counter()
    reactive = simulate(demand, group, TargetTracking(config.target_tracking_settings(with_predictive=False)))
    # What every strategy reads is what CloudWatch held (`observed`), as in `run_backtest`.
    observation = Observation.of_trace(scaled)
    history = observation.observe(metric_history(scaled.start, reactive, group))
    oracle = oracle_schedule(demand, group)
    models: list[ForecastModel] = []
    # Serial: the recording trainer keeps the models in this process.
    forest = walk_forward(
        history, observed_settings(config, scaled, observation), _recording_trainer(models), progress
    )
    timings["walk_forward"] = time.perf_counter() - begin
    minutes = len(demand)
    first_model = forest.first_model_time
    lo = min(minutes, (first_model - scaled.start) // 60 + 5) if first_model is not None else 0
    window = slice(lo, minutes)
    points: list[SweepPoint] = []

    def judge(strategy: str, knob: str, value: float, record: SimulationRecord, default: bool) -> None:
        fig = strategy_figures(
            strategy,
            demand,
            record.serving,
            record.billed,
            0,
            config.capacity_per_instance,
            window,
            oracle.billed,
            pool_cost=record.pool_cost,
        )
        points.append(
            SweepPoint(
                strategy,
                knob,
                value,
                fig.under_provisioned_minutes,
                fig.under_provisioned_share,
                fig.instance_hours,
                fig.instance_hours_vs_oracle,
                default,
            )
        )
        say(
            f"{strategy} {knob}={value:g}: {fig.under_provisioned_share:.3%} short, "
            f"{fig.instance_hours_vs_oracle:.3f} x oracle"
        )

    def timed(name: str, run: Callable[[], None]) -> None:
        started = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - started

    step_demand = history.demand_per_minute()
    quantiles = tuple(sorted({*HEADROOM_QUANTILES, config.policy.headroom_quantile}))

    def sweep_predictive() -> None:
        if not models:
            return
        uppers = quantile_uppers(forest, models, quantiles)
        for q in quantiles:
            policy = replace(config.policy, headroom_quantile=q)
            controller = PredictiveController(
                scaled.start,
                step_demand,
                uppers[q],
                forest.capacity,
                policy,
                config.min_size,
                config.max_size,
                observation,
            )
            tracking = TargetTracking(config.target_tracking_settings(with_predictive=True))
            record = simulate(demand, group, tracking, controller)
            judge("predictive", "headroom_quantile", q, record, q == config.policy.headroom_quantile)

    def sweep_reactive() -> None:
        for cpu in REACTIVE_CPU_TARGETS:
            record = (
                reactive
                if cpu == config.policy.target_cpu_percent
                else run_peer(
                    "reactive-lower",
                    demand,
                    scaled.start,
                    history,
                    config,
                    PeerSettings(reactive_lower_cpu_percent=cpu),
                    observation,
                )
            )
            judge("reactive", "target_cpu_percent", cpu, record, cpu == config.policy.target_cpu_percent)

    def sweep_peer(name: str, variants: list[tuple[str, float, PeerSettings, bool]]) -> Callable[[], None]:
        def run() -> None:
            for knob, value, settings, default in variants:
                record = run_peer(name, demand, scaled.start, history, config, settings, observation)
                judge(name, knob, value, record, default)

        return run

    base = PeerSettings()
    timed("predictive", sweep_predictive)
    timed("reactive", sweep_reactive)
    for name in ("aws-predictive-perfect", "aws-predictive-patterns"):
        variants = [("target_ratio", r, replace(base, aws_target_ratio=r), r == 1.0) for r in TARGET_RATIOS]
        variants += [
            ("buffer_minutes", b / 60, replace(base, aws_buffer_seconds=b), False)
            for b in AWS_BUFFERS_SECONDS
        ]
        timed(name, sweep_peer(name, variants))
    phpa = [("target_ratio", r, replace(base, phpa_target_ratio=r), r == 1.0) for r in TARGET_RATIOS]
    phpa += [
        (
            "alpha=beta=gamma" if len(set(abc)) == 1 else "alpha,beta,gamma",
            abc[0],
            replace(base, phpa_smoothing=abc),
            False,
        )
        for abc in PHPA_SMOOTHINGS
    ]
    timed("phpa", sweep_peer("phpa", phpa))
    crane = [("default_estimators", 1.0, base, True)]
    crane += [("margin_fraction", m, replace(base, crane_margin_fraction=m), False) for m in CRANE_MARGINS]
    timed("crane-dsp", sweep_peer("crane-dsp", crane))

    oracle_hours = float(np.sum(oracle.billed[window][np.isfinite(demand[window])])) / 60.0
    bound_curve = []
    for limit in BOUND_LIMITS:
        bound = clairvoyant_level_bound(demand, group, oracle.billed, limit, window, config.horizon)
        if bound is not None:
            bound_curve.append((bound.under_provisioned_share, bound.instance_hours_vs_oracle))
    return Sweep(
        trace=scaled.name,
        days=scaled.days,
        evaluated_minutes=int(np.sum(np.isfinite(demand[window]))),
        oracle_instance_hours=oracle_hours,
        points=points,
        bound_curve=bound_curve,
        timings=timings,
        scaling=scaling_statement(scaled.scale_factor, config.to_json()),
    )


def _fmt(value: float | None, pattern: str, missing: str) -> str:
    return missing if value is None or not math.isfinite(value) else pattern.format(value)


def render_sweep(sweep: Sweep) -> str:
    lines = [
        f"Sweep of {sweep.trace}: {sweep.days:.1f} days, {sweep.evaluated_minutes} evaluated minutes, "
        f"oracle {sweep.oracle_instance_hours:.1f} instance-hours; {sweep.scaling}",
        "",
        f"{'strategy':<34}{'knob':<26}{'under-prov.':>12}{'vs oracle':>11}  frontier",
    ]
    for strategy in SWEPT:
        front = sweep.frontier(strategy)
        for point in (p for p in sweep.points if p.strategy == strategy):
            knob = f"{point.knob}={point.value:g}"
            lines.append(
                f"{LABELS.get(strategy, strategy):<34}{knob:<26}{point.under_provisioned_share:12.3%}"
                f"{point.instance_hours_vs_oracle:11.3f}  {'*' if point in front else ''}"
                f"{' (default)' if point.default else ''}"
            )
    ours = sweep.ours()
    if ours is not None:
        lines += [
            "",
            f"At our default (HeadroomQuantile {ours.value:g}: {ours.under_provisioned_share:.3%} short for "
            f"{ours.instance_hours_vs_oracle:.3f} x oracle), each frontier:",
            f"{'strategy':<34}{'default short':>14}{'default cost':>13}"
            f"{'cost as rarely short':>22}{'short at our cost':>19}",
        ]
        for row in equal_shortfall(sweep):
            lines.append(
                f"{LABELS.get(row.strategy, row.strategy):<34}"
                f"{_fmt(row.default_under_provisioned_share, '{:.3%}', '-'):>14}"
                f"{_fmt(row.default_instance_hours_vs_oracle, '{:.3f}', '-'):>13}"
                f"{_fmt(row.instance_hours_vs_oracle_at_our_shortfall, '{:.3f}', 'not reached'):>22}"
                f"{_fmt(row.under_provisioned_share_at_our_cost, '{:.3%}', 'costs more'):>19}"
            )
    if sweep.bound_curve:
        lines += [
            "",
            "Clairvoyant-level bound: "
            + ", ".join(f"{u:.2%} short at {c:.3f}" for u, c in sweep.bound_curve),
        ]
    return "\n".join(lines)


def plot_frontier(sweep: Sweep, path: str | Path) -> Path:
    """Cost (instance-hours / oracle's) against under-provisioned minutes, one curve per
    strategy (its frontier; dominated settings as faint dots), the limits as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(11, 7), constrained_layout=True)
    for strategy in SWEPT:
        points = [p for p in sweep.points if p.strategy == strategy]
        if not points:
            continue
        colour = COLOURS.get(strategy, "tab:purple")
        front = pareto(points)
        axis.scatter(
            [100 * p.under_provisioned_share for p in points],
            [p.instance_hours_vs_oracle for p in points],
            color=colour,
            alpha=0.3,
            s=14,
        )
        axis.plot(
            [100 * p.under_provisioned_share for p in front],
            [p.instance_hours_vs_oracle for p in front],
            color=colour,
            marker="o",
            ms=4,
            lw=2.2 if strategy == "predictive" else 1.3,
            label=LABELS.get(strategy, strategy),
        )
        default = next((p for p in points if p.default), None)
        if default is not None:
            axis.scatter(
                [100 * default.under_provisioned_share],
                [default.instance_hours_vs_oracle],
                color=colour,
                marker="*",
                s=160,
                edgecolor="black",
                zorder=5,
            )
    if sweep.bound_curve:
        axis.plot(
            [100 * u for u, _ in sweep.bound_curve],
            [c for _, c in sweep.bound_curve],
            color="0.3",
            ls="--",
            lw=1.2,
            label="clairvoyant-level bound (knows the level, no boot delay)",
        )
    axis.axhline(1.0, color="black", ls=":", lw=1.2, label="oracle (knows every minute): 0 short at 1.0")
    axis.scatter([0.0], [1.0], color="black", marker="D", s=40, zorder=5)
    axis.set_xscale("symlog", linthresh=0.5)
    axis.set_xlabel("% of evaluated minutes under-provisioned (symlog)")
    axis.set_ylabel("instance-hours / the oracle's")
    axis.set_title(
        f"{sweep.trace}: cost against shortfall, every strategy's knob swept "
        "(stars: defaults; lower left is better)" + (f"\n{sweep.scaling}" if sweep.scaling else ""),
        loc="left",
        fontsize=11,
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="upper right")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
