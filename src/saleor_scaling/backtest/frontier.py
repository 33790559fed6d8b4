"""Cost against shortfall, not one point: every strategy's knobs swept (`--sweep`).

Each strategy trades instance-hours for fewer under-provisioned minutes with its knobs:

* predictive RF + reactive (ours): `HeadroomQuantile` x the target tracking target x the
  scale-in stabilization window x `MaxScaleInStep` (1, or 0: predict never lowers desired
  capacity and target tracking scales in) x `ScaleInWindowHoldsReactiveFloor` (true or
  false), since a deployment of ours sets all five, and at each
  target `ScalingMode` forecast-only (target tracking alone: predict publishes but does
  not scale), so ours is never dearer than target tracking at any target, and the table
  marks the shortfalls where forecast-only is what keeps it there. The nightly
  models are trained once (the expensive part); each quantile re-sizes the same mean
  forecasts with each serving model's own headroom table (`ForecastModel.forecast_rows`
  does exactly mean x `HeadroomTable.multipliers(mean, quantile)`; a test checks the
  default quantile reproduces the walk-forward's sizing), each target scales the served
  capacity per instance as the nightly job would learn it (`at_reactive_target`);
* reactive: the target tracking target (CPU and requests per target lowered together);
* AWS predictive scaling (both forecasts): the TargetValue, and the SchedulingBufferTime;
* PHPA and Crane: the HPA target; PHPA also its smoothing, Crane its margin fraction.

Every point is judged like the report (`report.strategy_figures`, the evaluated window).
A strategy's frontier is its Pareto-optimal points over all its knobs. Drawn with them:
the oracle (never short, the least cost) and the clairvoyant-level reference (`bounds`)
at a range of under-provisioning limits: every step sized as one fixed multiple of the
true level. It is not a lower bound: a sizing whose multiple varies (ours) can be
cheaper at low shortfalls, and is on the shared traces.

`equal_shortfall`: how many instance-hours each frontier needs to be as rarely short as
our default point (linear in the under-provisioned share between the neighbouring corners
of the frontier's lower hull, `lower_hull`), and how often it is short at our default cost;
`frontier_table`: every frontier's cost at the same shortfalls, 0.2 % to 10 %;
`cheaper_than_ours`: every run of shortfalls in that range where a peer beats ours.

The walk-forward's nights and then every setting's simulation run in `workers` processes
(`parallel.run_in_processes`); each is a pure function of what it is sent, so the points
are the serial run's.
"""

from __future__ import annotations

import itertools
import math
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from saleor_scaling.backtest.bounds import clairvoyant_level_bound
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.parallel import run_in_processes
from saleor_scaling.backtest.peers import COLOURS as PEER_COLOURS
from saleor_scaling.backtest.peers import LABELS as PEER_LABELS
from saleor_scaling.backtest.peers import PeerSettings, run_peer
from saleor_scaling.backtest.peers.aws_predictive import perfect_hourly_load
from saleor_scaling.backtest.peers.common import MINUTES_PER_STEP
from saleor_scaling.backtest.report import scaling_statement, strategy_figures
from saleor_scaling.backtest.rises import RiseWindows, rise_figures, sudden_rises
from saleor_scaling.backtest.runner import observed_settings, prepare_trace
from saleor_scaling.backtest.traces import Trace
from saleor_scaling.backtest.walkforward import WalkForward, walk_forward
from saleor_scaling.series import FloatArray
from saleor_scaling.settings import PolicySettings
from saleor_scaling.simulation.simulator import (
    GroupSettings,
    IntArray,
    SimulationRecord,
    TargetTracking,
    TargetTrackingSettings,
    simulate,
)
from saleor_scaling.simulation.strategies import PredictiveController

HEADROOM_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
"""Ours' `HeadroomQuantile`, over the template's whole range (0.5 to 0.99): the two at the
top are where a shop that must rarely be short is sized (tests/backtest/test_tuning.py)."""
REACTIVE_CPU_TARGETS = (90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0)
"""Target tracking's CPU target, ours and alone: above 70 % for the cheap end."""
SCALE_IN_WINDOWS_MINUTES = (30, 10)
"""Our scale-in stabilization windows (`ScaleInStabilizationMinutes`)."""
WINDOW_HOLDS_FLOOR = (True, False)
"""Our `ScaleInWindowHoldsReactiveFloor` (issue 23, item 2): false, the window remembers each
run's recommendation without its reactive floor, so capacity sized off a one-bucket spike is
not held for the window (docs/backtest.md, "After sudden rises")."""
MAX_SCALE_IN_STEPS = (1, 0)
"""Our `MaxScaleInStep`: 0 leaves scale-in to target tracking. On an hourly trace predict's
own scale-in, sized for the one far step a coarse anchor forecasts, is what leaves most of
ours' minutes short (docs/backtest.md, "Why ours sits above the reference on coarse
traces")."""
FORECAST_ONLY = "forecast-only"
"""Ours' knob for `ScalingMode` forecast-only: the group is target tracking alone at the
deployment's target (predict's window and quantile do nothing then)."""
TARGET_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
AWS_BUFFERS_SECONDS = (600, 900)
CRANE_MARGINS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75)
PHPA_SMOOTHINGS = ((0.5, 0.5, 0.5), (0.3, 0.05, 0.3), (0.1, 0.01, 0.1))
"""Holt-Winters alpha, beta, gamma tried besides PHPA's documented example (0.9 each)."""
BOUND_LIMITS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)

SWEPT = ("predictive", "reactive", "aws-predictive-perfect", "aws-predictive-patterns", "phpa", "crane-dsp")
KNOWN_HOURS = "predictive-known-hours"
"""A reference, not a strategy (`--known-hours`): ours' controller at every setting of ours'
target, window and scale-in step (the window's floor as configured), sized from each
hour's true mean load x a multiple instead of the forest's forecast, the very knowledge AWS
perfect-hour is handed (`known_hour_sizing`). Where AWS perfect-hour is cheaper than ours
and this is not, what it wins by is knowing the hour before it starts, not how it scales."""
REFERENCES = (KNOWN_HOURS,)
"""Swept like a strategy, printed and drawn, never counted as a peer that beats ours."""
HOUR_MEAN_MULTIPLES = (1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.5)
"""What the known hour's mean is sized up by: the known-hours reference's headroom knob."""
LABELS = {
    "predictive": "predictive RF + reactive (ours)",
    "reactive": "reactive target tracking",
    **{name: PEER_LABELS[name] for name in SWEPT if name in PEER_LABELS},
    KNOWN_HOURS: "ours fed each hour's mean (reference)",
}
COLOURS = {"predictive": "tab:blue", "reactive": "tab:red", **PEER_COLOURS, KNOWN_HOURS: "tab:purple"}


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
    target_cpu_percent: float | None = None
    """Ours only: the target tracking target this point ran at (our second knob)."""
    scale_in_stabilization_minutes: int | None = None
    """Ours only: predict's scale-in stabilization window (our third knob)."""
    max_scale_in_step: int | None = None
    """Ours only: predict's `MaxScaleInStep` (our fourth knob; 0: target tracking scales in)."""
    rise_excess_instance_hours: float | None = None
    """After sudden rises (`rises`): instance-hours billed above the oracle's."""
    rise_under_provisioned_minutes: int | None = None
    """After sudden rises: minutes short."""
    window_holds_reactive_floor: bool | None = None
    """Ours only: `ScaleInWindowHoldsReactiveFloor` (our fifth knob; false: the window holds
    each run's recommendation without its reactive floor)."""

    @property
    def setting(self) -> str:
        """The knob settings, as the table prints them."""
        knob = FORECAST_ONLY if self.knob == FORECAST_ONLY else f"{self.knob}={self.value:g}"
        if self.target_cpu_percent is not None:
            knob += f", cpu={self.target_cpu_percent:g}"
        if self.scale_in_stabilization_minutes is not None:
            knob += f", window={self.scale_in_stabilization_minutes}"
        if self.max_scale_in_step is not None:
            knob += f", step={self.max_scale_in_step}"
        if self.window_holds_reactive_floor is False:
            knob += ", floor=released"
        return knob


@dataclass(frozen=True)
class AtReactiveTarget:
    """Our deployment at another target tracking target. TargetCpuPercent is one parameter
    of the template: target tracking's CPU target, predict's reactive floor and the
    nightly job's capacity per instance (requests per minute at that CPU) all read it, and
    CapacityPerInstance, the requests-per-target target, is set for the same CPU. The
    instances themselves do not change (the simulated group keeps its CPU model)."""

    tracking: TargetTrackingSettings
    policy: PolicySettings
    capacity_ratio: float
    """What the served models' capacity per instance is multiplied by: the nightly job
    learns it as demand per instance x target / CPU (`labels.estimate_capacity_per_instance`,
    clamped within 4x of CapacityPerInstance, which scales alike), so it is proportional to
    the target, and the models need not be trained again."""


def at_reactive_target(
    config: BacktestConfig,
    target_cpu_percent: float,
    quantile: float,
    stabilization_minutes: int | None = None,
    max_scale_in_step: int | None = None,
    window_holds_reactive_floor: bool | None = None,
) -> AtReactiveTarget:
    """Our settings at `target_cpu_percent`, `quantile`, the scale-in stabilization
    window (`ScaleInStabilizationMinutes`), `MaxScaleInStep` and
    `ScaleInWindowHoldsReactiveFloor` (None keeps the configured one)."""
    ratio = target_cpu_percent / config.policy.target_cpu_percent
    tracking = replace(
        config.target_tracking_settings(with_predictive=True),
        target_cpu_percent=target_cpu_percent,
        target_requests_per_instance=config.capacity_per_instance * ratio,
    )
    policy = replace(config.policy, headroom_quantile=quantile, target_cpu_percent=target_cpu_percent)
    if stabilization_minutes is not None:
        policy = replace(policy, scale_in_stabilization_minutes=stabilization_minutes)
    if max_scale_in_step is not None:
        policy = replace(policy, max_scale_in_step=max_scale_in_step)
    if window_holds_reactive_floor is not None:
        policy = replace(policy, window_holds_reactive_floor=window_holds_reactive_floor)
    return AtReactiveTarget(tracking, policy, ratio)


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
            "frontier_table": {
                "under_provisioned_shares": list(FRONTIER_SHARES),
                "rows": [asdict(row) for row in frontier_table(self)],
                "cheaper_than_ours": [asdict(loss) for loss in cheaper_than_ours(self)],
            },
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


def lower_hull(front: list[SweepPoint]) -> list[SweepPoint]:
    """The points of a frontier (by rising cost) on its lower convex hull: a point above
    the straight line between two others costs more than alternating those two settings,
    and reading between hull points means adding a setting never raises the frontier
    (reading between any neighbours could: a new point just above that line would)."""
    hull: list[SweepPoint] = []
    for point in front:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b stays only if it lies strictly below the line from a to `point`.
            cross = (b.under_provisioned_share - a.under_provisioned_share) * (
                point.instance_hours_vs_oracle - a.instance_hours_vs_oracle
            ) - (b.instance_hours_vs_oracle - a.instance_hours_vs_oracle) * (
                point.under_provisioned_share - a.under_provisioned_share
            )
            if cross < 0:
                break
            hull.pop()
        hull.append(point)
    return hull


def cost_at_share(front: list[SweepPoint], share: float) -> float | None:
    """Instance-hours vs oracle the frontier needs to be short no more than `share` of the
    time (linear between neighbours on its lower hull); None if no swept point is that
    rarely short."""
    reading = read_at_share(front, share)
    return None if reading is None else reading[0]


def read_at_share(front: list[SweepPoint], share: float) -> tuple[float, tuple[SweepPoint, ...]] | None:
    """`cost_at_share`, with the frontier points the cost is read from (one, or the two
    it interpolates between)."""
    front = lower_hull(front)
    if not front:
        return None
    reached = [p for p in front if p.under_provisioned_share <= share + 1e-12]
    if not reached:
        return None
    best = reached[0]
    index = front.index(best)
    if index == 0 or best.under_provisioned_share >= share - 1e-12:
        return best.instance_hours_vs_oracle, (best,)
    before = front[index - 1]
    span = before.under_provisioned_share - best.under_provisioned_share
    weight = (before.under_provisioned_share - share) / span if span > 0 else 1.0
    cost = before.instance_hours_vs_oracle + weight * (
        best.instance_hours_vs_oracle - before.instance_hours_vs_oracle
    )
    return cost, (before, best)


def share_at_cost(front: list[SweepPoint], cost: float) -> float | None:
    """Under-provisioned share of the frontier at `cost` (linear between neighbours); None
    if every swept point costs more. Where the sweep ends below `cost`, its last point's
    share: an upper bound (more capacity would be short less often)."""
    front = lower_hull(front)
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
    for strategy in (*SWEPT, *REFERENCES):
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


FRONTIER_SHARES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.10)
"""The shortfalls the frontier table reads every strategy's cost at."""
LEVEL_REFERENCE = "level reference"


@dataclass(frozen=True)
class FrontierRow:
    strategy: str
    instance_hours_vs_oracle: tuple[float | None, ...]
    """At each of `FRONTIER_SHARES`, the cost `cost_at_share` reads off the frontier (None:
    no swept setting was that rarely short)."""
    read_from: tuple[tuple[str, ...], ...] = ()
    """At each share, the settings (`SweepPoint.setting`) of the frontier points read."""

    def forecast_only(self) -> tuple[bool, ...]:
        """Ours: at which shares the reading rests on a forecast-only point (there, target
        tracking alone is what our frontier offers)."""
        return tuple(any(s.startswith(FORECAST_ONLY) for s in settings) for settings in self.read_from)


def frontier_table(sweep: Sweep, shares: tuple[float, ...] = FRONTIER_SHARES) -> list[FrontierRow]:
    """Each strategy's frontier (over all its knobs) read at the same shortfalls, then any
    swept reference's (`REFERENCES`) and the clairvoyant-level reference's curve read alike
    (its row `LEVEL_REFERENCE`)."""
    fronts = {
        strategy: sweep.frontier(strategy)
        for strategy in (*SWEPT, *REFERENCES)
        if any(p.strategy == strategy for p in sweep.points)
    }
    if sweep.bound_curve:
        fronts[LEVEL_REFERENCE] = pareto(
            [SweepPoint(LEVEL_REFERENCE, "limit", 0.0, 0, u, c, c) for u, c in sweep.bound_curve]
        )
    rows = []
    for strategy, front in fronts.items():
        readings = [read_at_share(front, share) for share in shares]
        rows.append(
            FrontierRow(
                strategy,
                tuple(None if r is None else r[0] for r in readings),
                tuple(() if r is None else tuple(p.setting for p in r[1]) for r in readings),
            )
        )
    return rows


@dataclass(frozen=True)
class Loss:
    """A run of shortfalls over which a peer's frontier costs less than ours (or reaches
    them and ours does not)."""

    strategy: str
    from_share: float
    to_share: float
    worst_share: float
    """Where the peer is cheapest against ours, relatively."""
    ours: float | None
    """Our cost at `worst_share` (None: ours is never that rarely short)."""
    theirs: float


def cheaper_than_ours(
    sweep: Sweep, low: float = FRONTIER_SHARES[0], high: float = FRONTIER_SHARES[-1]
) -> list[Loss]:
    """Where, between `low` and `high` short, a peer's frontier beats ours (the references,
    level and `REFERENCES`, are no strategies and are left out). Both frontiers are straight
    between the corners of their lower hulls, so their cost ratio is monotone between
    consecutive corners: reading at every corner of either (and the table's shares) finds
    every run and its worst point, to within the corners."""
    ours = sweep.frontier("predictive")
    if not ours:
        return []
    losses = []
    for strategy in SWEPT:
        theirs = sweep.frontier(strategy)
        if strategy == "predictive" or not theirs:
            continue
        corners = {p.under_provisioned_share for p in [*lower_hull(ours), *lower_hull(theirs)]}
        shares = sorted(x for x in {*FRONTIER_SHARES, *corners, low, high} if low <= x <= high)
        run: list[tuple[float, float | None, float]] = []
        for share in [*shares, math.inf]:
            mine = cost_at_share(ours, share) if share <= high else None
            other = cost_at_share(theirs, share) if share <= high else None
            if other is not None and (mine is None or other < mine - 1e-9):
                run.append((share, mine, other))
                continue
            if run:
                worst = max(run, key=lambda r: math.inf if r[1] is None else 1 - r[2] / r[1])
                losses.append(Loss(strategy, run[0][0], run[-1][0], worst[0], worst[1], worst[2]))
                run = []
    return losses


def quantile_uppers(forest: WalkForward, quantiles: tuple[float, ...]) -> dict[float, FloatArray]:
    """The walk-forward's sizing at other headroom quantiles, from the same nightly models'
    mean forecasts and headroom tables (`WalkForward.headrooms`)."""
    uppers = {q: np.full(len(forest.mean), np.nan) for q in quantiles}
    headroom = None
    for index, night in enumerate(forest.nights):
        if night.trained:
            if index not in forest.headrooms:
                raise ValueError(f"night {index + 1} trained but its headroom table was not kept")
            headroom = forest.headrooms[index]
            if headroom is None:
                raise ValueError("a model without a headroom table: re-forecast per tree instead")
        if headroom is None or night.first_anchor >= night.end_anchor:
            continue
        anchors = np.arange(night.first_anchor, night.end_anchor)
        anchors = anchors[np.isfinite(forest.mean[anchors])]
        if not len(anchors):
            continue
        means = forest.mean[anchors]
        for q in quantiles:
            uppers[q][anchors] = means * headroom.multipliers(means, q, forest.burstiness[anchors])
    return uppers


def known_hour_sizing(demand: FloatArray, start: int, served: np.ndarray, horizon_steps: int) -> FloatArray:
    """Per anchor (5-minute step of the trace), the true mean load of the UTC hour holding
    its target step (anchor + `horizon_steps`), as AWS perfect-hour knows it
    (`perfect_hourly_load`); NaN where ours serves nothing (`served` false: no night's
    model yet) or that hour is not whole in the trace."""
    sizing = np.full(len(served), np.nan)
    starts, loads = perfect_hourly_load(demand, start)
    if not len(starts):
        return sizing
    target_minutes = (np.arange(len(served)) + horizon_steps) * MINUTES_PER_STEP
    hours = np.searchsorted(starts, target_minutes, side="right") - 1
    inside = (hours >= 0) & (target_minutes < starts[np.maximum(hours, 0)] + 60)
    known = np.asarray(served, dtype=bool) & inside
    sizing[known] = loads[hours[known]]
    return sizing


@dataclass(frozen=True)
class PredictiveInputs:
    """What our controller reads: the observed demand, the sizing and capacities per anchor."""

    start: int
    step_demand: FloatArray
    upper: FloatArray
    capacity: FloatArray


def simulate_ours(
    demand: FloatArray,
    group: GroupSettings,
    inputs: PredictiveInputs,
    ours: AtReactiveTarget,
    config: BacktestConfig,
    observation: Observation,
) -> SimulationRecord:
    controller = PredictiveController(
        inputs.start,
        inputs.step_demand,
        inputs.upper,
        inputs.capacity,
        ours.policy,
        config.min_size,
        config.max_size,
        observation,
    )
    return simulate(demand, group, TargetTracking(ours.tracking), controller)


def simulate_forecast_only(
    demand: FloatArray, group: GroupSettings, ours: AtReactiveTarget
) -> SimulationRecord:
    """Ours deployed with `ScalingMode` forecast-only: the template's target tracking alone."""
    return simulate(demand, group, TargetTracking(ours.tracking))


@dataclass(frozen=True)
class Setting:
    """One point of the sweep to simulate; `run` pickles (a partial of a module-level function)."""

    strategy: str
    knob: str
    value: float
    default: bool
    run: Callable[[], SimulationRecord]
    target_cpu_percent: float | None = None
    scale_in_stabilization_minutes: int | None = None
    max_scale_in_step: int | None = None
    window_holds_reactive_floor: bool | None = None


@dataclass(frozen=True)
class Judging:
    """How every point is judged: as the report judges it, on the evaluated window."""

    demand: FloatArray
    window: slice
    oracle_billed: IntArray
    capacity_per_instance: float
    rises: RiseWindows | None = None
    """The sudden rises of the evaluated window (`rises`); None: no rise figures."""


def judge_setting(setting: Setting, judging: Judging) -> SweepPoint:
    record = setting.run()
    fig = strategy_figures(
        setting.strategy,
        judging.demand,
        record.serving,
        record.billed,
        0,
        judging.capacity_per_instance,
        judging.window,
        judging.oracle_billed,
        pool_cost=record.pool_cost,
    )
    after_rises = (
        rise_figures(
            setting.strategy,
            judging.rises,
            judging.demand,
            record.serving,
            record.billed,
            judging.oracle_billed,
            judging.capacity_per_instance,
        )
        if judging.rises is not None
        else None
    )
    return SweepPoint(
        setting.strategy,
        setting.knob,
        setting.value,
        fig.under_provisioned_minutes,
        fig.under_provisioned_share,
        fig.instance_hours,
        fig.instance_hours_vs_oracle,
        setting.default,
        setting.target_cpu_percent,
        setting.scale_in_stabilization_minutes,
        setting.max_scale_in_step,
        None if after_rises is None else round(after_rises.excess_instance_hours, 4),
        None if after_rises is None else after_rises.under_provisioned_minutes,
        setting.window_holds_reactive_floor,
    )


def aws_peer_knobs() -> list[tuple[str, float, PeerSettings, bool]]:
    """An AWS predictive scaling peer's swept settings, as (knob, value, settings, whether
    it is the default): each of `TARGET_RATIOS`, then each of `AWS_BUFFERS_SECONDS`."""
    base = PeerSettings()
    return [("target_ratio", r, replace(base, aws_target_ratio=r), r == 1.0) for r in TARGET_RATIOS] + [
        ("buffer_minutes", b / 60, replace(base, aws_buffer_seconds=b), False) for b in AWS_BUFFERS_SECONDS
    ]


def run_sweep(
    trace: Trace,
    config: BacktestConfig | None = None,
    progress: Callable[[str], None] | None = None,
    known_hours: bool = False,
) -> Sweep:
    """Every strategy at every knob setting on `trace`, judged on the evaluated window;
    `known_hours`: also the `KNOWN_HOURS` reference (doubles ours' simulations)."""
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
    # The nights in `workers` processes, as run_backtest trains them: each night's headroom
    # table comes back with its forecasts, which is all the other quantiles need.
    forest = walk_forward(
        history,
        observed_settings(config, scaled, observation),
        progress=progress,
        workers=config.worker_count,
    )
    timings["walk_forward"] = time.perf_counter() - begin
    minutes = len(demand)
    first_model = forest.first_model_time
    lo = min(minutes, (first_model - scaled.start) // 60 + 5) if first_model is not None else 0
    window = slice(lo, minutes)
    step_demand = history.demand_per_minute()
    quantiles = tuple(sorted({*HEADROOM_QUANTILES, config.policy.headroom_quantile}))
    # Ours at every target the reactive peer is swept at: a deployment sets both.
    reactive_targets = tuple(sorted({*REACTIVE_CPU_TARGETS, config.policy.target_cpu_percent}, reverse=True))
    # And a shorter scale-in window: the cheap end of ours (capacity sized off a spike is
    # held for less long).
    policy = config.policy
    windows = tuple(sorted({*SCALE_IN_WINDOWS_MINUTES, policy.scale_in_stabilization_minutes}, reverse=True))
    steps = tuple(sorted({*MAX_SCALE_IN_STEPS, policy.max_scale_in_step}, reverse=True))
    floors = tuple(sorted({*WINDOW_HOLDS_FLOOR, policy.window_holds_reactive_floor}, reverse=True))
    settings: list[Setting] = []
    if forest.headrooms:
        uppers = quantile_uppers(forest, quantiles)
        for floor, step, window_minutes, cpu, q in itertools.product(
            floors, steps, windows, reactive_targets, quantiles
        ):
            ours = at_reactive_target(config, cpu, q, window_minutes, step, floor)
            run = partial(
                simulate_ours,
                demand,
                group,
                PredictiveInputs(scaled.start, step_demand, uppers[q], forest.capacity * ours.capacity_ratio),
                ours,
                config,
                observation,
            )
            default = (q, cpu, window_minutes, step, floor) == (
                policy.headroom_quantile,
                policy.target_cpu_percent,
                policy.scale_in_stabilization_minutes,
                policy.max_scale_in_step,
                policy.window_holds_reactive_floor,
            )
            settings.append(
                Setting("predictive", "headroom_quantile", q, default, run, cpu, window_minutes, step, floor)
            )
        if known_hours:
            horizon_steps = observation.horizon_steps(config.horizon)
            known = known_hour_sizing(demand, scaled.start, np.isfinite(forest.mean), horizon_steps)
            for step, window_minutes, cpu, multiple in itertools.product(
                steps, windows, reactive_targets, HOUR_MEAN_MULTIPLES
            ):
                ours = at_reactive_target(config, cpu, policy.headroom_quantile, window_minutes, step)
                inputs = PredictiveInputs(
                    scaled.start, step_demand, known * multiple, forest.capacity * ours.capacity_ratio
                )
                run = partial(simulate_ours, demand, group, inputs, ours, config, observation)
                settings.append(
                    Setting(
                        KNOWN_HOURS, "hour_mean_multiple", multiple, False, run, cpu, window_minutes, step
                    )
                )
    for cpu in reactive_targets:
        # Forecast-only at each target: where no forecast beats plain headroom, the
        # operator of ours switches scaling off, and the frontier should say so.
        ours = at_reactive_target(config, cpu, policy.headroom_quantile)
        run = partial(simulate_forecast_only, demand, group, ours)
        settings.append(Setting("predictive", FORECAST_ONLY, 0.0, False, run, cpu))
    for cpu in reactive_targets:
        lower = PeerSettings(reactive_lower_cpu_percent=cpu)
        run = partial(run_peer, "reactive-lower", demand, scaled.start, history, config, lower, observation)
        settings.append(
            Setting("reactive", "target_cpu_percent", cpu, cpu == config.policy.target_cpu_percent, run)
        )

    def peer(name: str, knob: str, value: float, peer_settings: PeerSettings, default: bool) -> Setting:
        run = partial(run_peer, name, demand, scaled.start, history, config, peer_settings, observation)
        return Setting(name, knob, value, default, run)

    base = PeerSettings()
    for name in ("aws-predictive-perfect", "aws-predictive-patterns"):
        settings += [peer(name, *knobs) for knobs in aws_peer_knobs()]
    settings += [
        peer("phpa", "target_ratio", r, replace(base, phpa_target_ratio=r), r == 1.0) for r in TARGET_RATIOS
    ]
    settings += [
        peer(
            "phpa",
            "alpha=beta=gamma" if len(set(abc)) == 1 else "alpha,beta,gamma",
            abc[0],
            replace(base, phpa_smoothing=abc),
            False,
        )
        for abc in PHPA_SMOOTHINGS
    ]
    settings.append(peer("crane-dsp", "default_estimators", 1.0, base, True))
    settings += [
        peer("crane-dsp", "margin_fraction", m, replace(base, crane_margin_fraction=m), False)
        for m in CRANE_MARGINS
    ]

    def heard(_position: int, point: SweepPoint) -> None:
        say(
            f"{point.strategy} {point.setting}: {point.under_provisioned_share:.3%} short, "
            f"{point.instance_hours_vs_oracle:.3f} x oracle"
        )

    started = time.perf_counter()
    # Each setting is one simulation, independent of the others: in `workers` processes.
    rises = sudden_rises(demand, config.capacity_per_instance, window)
    judging = Judging(demand, window, oracle.billed, config.capacity_per_instance, rises)
    points = run_in_processes(
        partial(judge_setting, judging=judging),
        settings,
        config.worker_count,
        on_result=heard,
        progress=progress,
        remaining="simulating the remaining settings",
    )
    timings["settings"] = time.perf_counter() - started

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
        f"{'strategy':<34}{'knob':<34}{'under-prov.':>12}{'vs oracle':>11}  frontier",
    ]
    for strategy in (*SWEPT, *REFERENCES):
        front = sweep.frontier(strategy)
        for point in (p for p in sweep.points if p.strategy == strategy):
            lines.append(
                f"{LABELS.get(strategy, strategy):<34}{point.setting:<34}"
                f"{point.under_provisioned_share:12.3%}"
                f"{point.instance_hours_vs_oracle:11.3f}  {'*' if point in front else ''}"
                f"{' (default)' if point.default else ''}"
            )
    ours = sweep.ours()
    if ours is not None:
        lines += [
            "",
            f"At our default ({ours.setting}: {ours.under_provisioned_share:.3%} short for "
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
    lines += [
        "",
        "Each frontier over all its knobs: instance-hours vs oracle to be short at most",
        f"{'strategy':<34}" + "".join(f"{share:>9.1%}" for share in FRONTIER_SHARES),
    ]
    table = frontier_table(sweep)
    for frontier_row in table:
        marks = frontier_row.forecast_only() if frontier_row.strategy == "predictive" else ()
        lines.append(
            f"{LABELS.get(frontier_row.strategy, frontier_row.strategy):<34}"
            + "".join(
                f"{_fmt(cost, '{:.3f}', '-') + ('f' if index < len(marks) and marks[index] else ''):>9}"
                for index, cost in enumerate(frontier_row.instance_hours_vs_oracle)
            )
        )
    lines.append(
        "f: ours read off a ScalingMode forecast-only point (target tracking alone at that target): "
        "there forecasting does not pay"
    )
    losses = cheaper_than_ours(sweep)
    lines += ["", "Where a peer's frontier is cheaper than ours, 0.2 % to 10 % short (worst point):"]
    lines += [
        f"  {LABELS.get(loss.strategy, loss.strategy)} "
        + (
            f"at {loss.from_share:.2%}"
            if loss.from_share == loss.to_share
            else f"from {loss.from_share:.2%} to {loss.to_share:.2%}, worst at {loss.worst_share:.2%}"
        )
        + f": {loss.theirs:.4f} against {_fmt(loss.ours, '{:.4f}', 'not reached')}"
        + ("" if loss.ours is None else f", {1 - loss.theirs / loss.ours:.2%} cheaper")
        for loss in losses
    ] or ["  nowhere"]
    known = sweep.frontier(KNOWN_HOURS)
    for loss in (loss for loss in losses if known and loss.strategy == "aws-predictive-perfect"):
        at_worst = cost_at_share(known, loss.worst_share)
        line = f"  {LABELS[KNOWN_HOURS]} at {loss.worst_share:.2%}: {_fmt(at_worst, '{:.4f}', 'not reached')}"
        if at_worst is not None:
            saving = 1 - at_worst / loss.theirs
            line += (
                f", {abs(saving):.2%} {'cheaper' if saving >= 0 else 'dearer'} than "
                f"{LABELS[loss.strategy]} with the same knowledge"
            )
        lines.append(line)
    if sweep.bound_curve:
        lines += [
            "",
            f"{REFERENCE_DESCRIPTION}: "
            + ", ".join(f"{u:.2%} short at {c:.3f}" for u, c in sweep.bound_curve),
        ]
    return "\n".join(lines)


REFERENCE_DESCRIPTION = (
    "Clairvoyant-level reference (each step one fixed multiple of the true surrounding level, "
    "no boot delay; not a lower bound: a sizing that varies its multiple can be cheaper)"
)
LABELS[LEVEL_REFERENCE] = "clairvoyant-level reference"
SECOND_KNOBS_AROUND_DEFAULT = frozenset({"buffer_minutes", "smoothing"})
"""Knobs swept with the others at their defaults: their lines start at the default point."""


@dataclass(frozen=True)
class Series:
    """One line of the frontier plot: x the under-provisioned percent, y the cost."""

    strategy: str
    label: str
    points: tuple[SweepPoint, ...]
    dashed: bool
    bold: bool


def knob_family(point: SweepPoint) -> str:
    """PHPA's smoothing settings are one knob, printed under two names."""
    return "smoothing" if point.knob.startswith("alpha") else point.knob


def frontier_series(sweep: Sweep) -> list[Series]:
    """The lines to draw. Ours: its frontier over all its knobs, and thinly the quantile
    alone at the default target. A peer with two knobs: one line per knob, each its own
    Pareto-optimal points (joining one knob's points to another's drew a hook that is
    no setting's curve), the knob with more settings solid. A swept reference: its
    frontier, dashed."""
    series: list[Series] = []
    for strategy in SWEPT:
        points = [p for p in sweep.points if p.strategy == strategy]
        if not points:
            continue
        label = LABELS.get(strategy, strategy)
        default = next((p for p in points if p.default), None)
        if strategy == "predictive":
            series.append(
                Series(
                    strategy,
                    f"{label}: HeadroomQuantile x reactive target x scale-in window, step and floor, "
                    "or forecast-only",
                    tuple(pareto(points)),
                    False,
                    True,
                )
            )
            if default is not None:
                alone = [
                    p
                    for p in points
                    if (
                        p.target_cpu_percent,
                        p.scale_in_stabilization_minutes,
                        p.max_scale_in_step,
                        p.window_holds_reactive_floor,
                    )
                    == (
                        default.target_cpu_percent,
                        default.scale_in_stabilization_minutes,
                        default.max_scale_in_step,
                        default.window_holds_reactive_floor,
                    )
                ]
                if len(alone) < len(points):
                    series.append(
                        Series(
                            strategy,
                            f"{label}: HeadroomQuantile alone (target {default.target_cpu_percent:g} %, "
                            f"window {default.scale_in_stabilization_minutes} min"
                            + (
                                ""
                                if default.max_scale_in_step is None
                                else f", MaxScaleInStep {default.max_scale_in_step}"
                            )
                            + ")",
                            tuple(pareto(alone)),
                            True,
                            False,
                        )
                    )
            continue
        families: dict[str, list[SweepPoint]] = {}
        for p in points:
            families.setdefault(knob_family(p), []).append(p)
        if len(families) == 1:
            series.append(Series(strategy, label, tuple(pareto(points)), False, False))
            continue
        main = max(families, key=lambda name: len(families[name]))
        for name, members in families.items():
            if name in SECOND_KNOBS_AROUND_DEFAULT and default is not None and default not in members:
                members = [default, *members]
            series.append(Series(strategy, f"{label}: {name}", tuple(pareto(members)), name != main, False))
    for reference in REFERENCES:
        front = sweep.frontier(reference)
        if front:
            series.append(
                Series(reference, f"{LABELS[reference]}: over all ours' knobs", tuple(front), True, False)
            )
    return series


def plot_frontier(sweep: Sweep, path: str | Path) -> Path:
    """Cost (instance-hours / oracle's) against under-provisioned minutes: the lines of
    `frontier_series` (dominated settings as faint dots, defaults as stars), the oracle
    and the clairvoyant-level reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(11, 7.5), constrained_layout=True)
    for strategy in (*SWEPT, *REFERENCES):
        points = [p for p in sweep.points if p.strategy == strategy]
        if not points:
            continue
        colour = COLOURS.get(strategy, "tab:purple")
        axis.scatter(
            [100 * p.under_provisioned_share for p in points],
            [p.instance_hours_vs_oracle for p in points],
            color=colour,
            alpha=0.3,
            s=14,
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
    for line in frontier_series(sweep):
        axis.plot(
            [100 * p.under_provisioned_share for p in line.points],
            [p.instance_hours_vs_oracle for p in line.points],
            color=COLOURS.get(line.strategy, "tab:purple"),
            marker="o",
            ms=4,
            ls="--" if line.dashed else "-",
            lw=2.4 if line.bold else 1.0 if line.dashed else 1.3,
            label=line.label,
        )
    if sweep.bound_curve:
        axis.plot(
            [100 * u for u, _ in sweep.bound_curve],
            [c for _, c in sweep.bound_curve],
            color="0.3",
            ls=":",
            lw=1.4,
            label="clairvoyant-level reference: one fixed multiple of the true level, no boot delay "
            "(not a lower bound)",
        )
    axis.axhline(1.0, color="black", ls=":", lw=1.2, label="oracle (knows every minute): 0 short at 1.0")
    axis.scatter([0.0], [1.0], color="black", marker="D", s=40, zorder=5)
    axis.set_xscale("symlog", linthresh=0.5)
    axis.set_xlabel("% of evaluated minutes under-provisioned (symlog)")
    axis.set_ylabel("instance-hours / the oracle's")
    axis.set_title(
        f"{sweep.trace}: cost against shortfall, every strategy's knobs swept "
        "(stars: defaults; lower left is better)"
        + ("\n" + "\n".join(textwrap.wrap(sweep.scaling, 120)) if sweep.scaling else ""),
        loc="left",
        fontsize=11,
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper right")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
