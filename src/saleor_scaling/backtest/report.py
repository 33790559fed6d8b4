"""Figures of merit per strategy, the acceptance targets, and their table and JSON.

Figures, over the evaluated minutes whose demand is known (a gap in the trace is judged
for nobody):

* under-provisioned share: minutes whose demand exceeds in_service x capacity_per_instance,
  i.e. the group serves them above the target utilisation; counted apart, the minutes
  *beyond MaxSize*, whose demand needs more than MaxSize instances: short for every
  strategy, the oracle included (they are the oracle's only short minutes), and the share
  short *within the group's reach* (the rest). The acceptance target judges the whole
  share, so a minute beyond MaxSize counts fully against predictive and a fifth in its limit;
* unserved requests: the requests above that capacity, summed, and as a share of demand;
* instance-hours: instances billed (booting included) per minute / 60, and their ratio to
  the oracle's; with a warm pool, the pool's cost in instance-hours is included (a pool
  instance in full while it boots into the pool or runs there, at its EBS volume's share
  when stopped or hibernated: `simulator.PARKED_COST_SHARE`) and shown apart too;
* scaling actions: changes of the desired capacity;
* after sudden rises (`rises`): the instance-hours billed above the oracle's and the
  minutes short in the 90 minutes after each;
* forecast MAE and MAPE (`training.error_scores`) of the mean forecast for the 5-minute
  demand at the forecast target, over the predict runs that used a forecast, next to the
  seasonal-naive forecast's on exactly the same steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from saleor_scaling.backtest.bounds import LevelBound
from saleor_scaling.backtest.peers import LABELS as PEER_LABELS
from saleor_scaling.backtest.planned import render_event_table
from saleor_scaling.backtest.rises import render_rises
from saleor_scaling.retrain_service import MIN_USABLE_SHARE
from saleor_scaling.series import FloatArray
from saleor_scaling.simulation.simulator import IntArray, WarmPoolSettings
from saleor_scaling.simulation.strategies import DecisionLog

UNDER_PROVISIONED_SHARE_OF_REACTIVE = 0.2
INSTANCE_HOURS_OF_ORACLE = 1.15

LABELS = {
    "reactive": "reactive (target tracking)",
    "predictive": "predictive RF + reactive",
    "seasonal-naive": "seasonal-naive + reactive",
    "oracle": "oracle (knows the future)",
    **PEER_LABELS,
}


@dataclass(frozen=True)
class ForecastFigures:
    mae: float
    mape: float
    rows: int
    seasonal_naive_mae: float
    seasonal_naive_mape: float
    runs_with_forecast: int
    fallbacks: int


@dataclass(frozen=True)
class StrategyFigures:
    strategy: str
    minutes: int
    under_provisioned_minutes: int
    under_provisioned_share: float
    unserved_requests: float
    unserved_share: float
    instance_hours: float
    instance_hours_vs_oracle: float
    scaling_actions: int
    forecast: ForecastFigures | None = None
    beyond_max_size_minutes: int = 0
    """Under-provisioned minutes whose demand needs more than MaxSize instances: short for
    every strategy (0 when MaxSize was not given)."""
    under_provisioned_within_reach_share: float = math.nan
    """Share of the minutes short although MaxSize instances would have served them."""
    pool_instance_hours: float = 0.0
    """The warm pool's cost in instance-hours, included in `instance_hours`."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: _clean(value) for key, value in data.items()}


@dataclass(frozen=True)
class TargetCheck:
    name: str
    met: bool
    detail: str


@dataclass
class StrategySeries:
    """Per-minute outcome of one strategy (for plots; not in the JSON)."""

    serving: IntArray
    billed: IntArray


@dataclass
class BacktestReport:
    trace: dict[str, Any]
    config: dict[str, Any]
    evaluation: dict[str, Any]
    figures: dict[str, StrategyFigures]
    """Over the evaluated window (from the first nightly model on)."""
    full_span: dict[str, StrategyFigures]
    """Over the whole trace, warm-up nights included."""
    walk_forward: dict[str, Any]
    level_bound: LevelBound | None
    """The clairvoyant-level bound at the under-provisioning target (`bounds`)."""
    timings: dict[str, float]
    start: int
    demand: FloatArray
    series: dict[str, StrategySeries] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    decisions: dict[str, DecisionLog] = field(default_factory=dict)
    """Each predictive strategy's decision log (not in the JSON)."""
    events: dict[str, Any] = field(default_factory=dict)
    """With planned events (`--events`): figures inside and outside them (`planned`)."""
    rises: dict[str, Any] = field(default_factory=dict)
    """After sudden rises, on the evaluated window: capacity above the oracle's and
    minutes short (`rises.rise_summary`)."""

    def targets(self) -> list[TargetCheck]:
        """The acceptance targets, judged on the evaluated window."""
        checks: list[TargetCheck] = []
        reactive, predictive, oracle = (self.figures.get(n) for n in ("reactive", "predictive", "oracle"))
        if reactive is None or predictive is None or oracle is None:
            return checks
        limit = UNDER_PROVISIONED_SHARE_OF_REACTIVE * reactive.under_provisioned_share
        checks.append(
            TargetCheck(
                "under-provisioned <= 1/5 of reactive",
                predictive.under_provisioned_share <= limit,
                f"{predictive.under_provisioned_share:.3%} vs limit {limit:.3%} "
                f"(reactive {reactive.under_provisioned_share:.3%}; of which beyond MaxSize, short for "
                f"every strategy: {_share(predictive.beyond_max_size_minutes, predictive.minutes):.3%})",
            )
        )
        bound = self.level_bound
        unattainable = (
            f"; unattainable by forecasting the level: the clairvoyant-level bound is "
            f"{bound.instance_hours_vs_oracle:.3f} x oracle"
            if bound is not None and bound.instance_hours_vs_oracle > INSTANCE_HOURS_OF_ORACLE
            else ""
        )
        checks.append(
            TargetCheck(
                f"instance-hours <= {INSTANCE_HOURS_OF_ORACLE:g} x oracle",
                predictive.instance_hours_vs_oracle <= INSTANCE_HOURS_OF_ORACLE,
                f"{predictive.instance_hours_vs_oracle:.3f} x oracle "
                f"({predictive.instance_hours:.1f} h vs {oracle.instance_hours:.1f} h){unattainable}",
            )
        )
        forecast = predictive.forecast
        if forecast is not None:
            checks.append(
                TargetCheck(
                    "forecast MAE < seasonal-naive MAE",
                    forecast.mae < forecast.seasonal_naive_mae,
                    f"{forecast.mae:.1f} vs {forecast.seasonal_naive_mae:.1f} requests/min "
                    f"on {forecast.rows} steps",
                )
            )
        return checks

    def table(self) -> str:
        if not self.events:
            return render_table(self)
        return render_table(self) + "\n" + render_event_table(self.events)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "config": self.config,
            "evaluation": self.evaluation,
            "figures": {name: fig.to_json() for name, fig in self.figures.items()},
            "full_span": {name: fig.to_json() for name, fig in self.full_span.items()},
            "targets": [asdict(check) for check in self.targets()],
            "walk_forward": self.walk_forward,
            "level_bound": _clean(asdict(self.level_bound)) if self.level_bound else None,
            "timings_seconds": {key: round(value, 3) for key, value in self.timings.items()},
            "notes": self.notes,
            **({"events": self.events} if self.events else {}),
            **({"rises": self.rises} if self.rises else {}),
        }


def strategy_figures(
    strategy: str,
    demand: FloatArray,
    serving: IntArray,
    billed: IntArray,
    actions: int,
    capacity_per_instance: float,
    window: slice,
    oracle_billed: IntArray | None = None,
    forecast: ForecastFigures | None = None,
    max_size: int | None = None,
    pool_cost: FloatArray | None = None,
) -> StrategyFigures:
    """`pool_cost`: the warm pool's cost each minute in instances (`SimulationRecord.pool_cost`)."""
    load = demand[window]
    known = np.isfinite(load)
    load = load[known]
    capacity = serving[window][known] * capacity_per_instance
    shortfall = np.maximum(load - capacity, 0.0)
    tolerance = 1e-9 * np.maximum(load, 1.0)
    under = shortfall > tolerance
    beyond = np.zeros_like(under)
    if max_size is not None:
        beyond = under & (load - max_size * capacity_per_instance > tolerance)
    pool_hours = float(np.sum(pool_cost[window][known])) / 60.0 if pool_cost is not None else 0.0
    hours = float(np.sum(billed[window][known])) / 60.0 + pool_hours
    oracle_hours = float(np.sum(oracle_billed[window][known])) / 60.0 if oracle_billed is not None else hours
    total = float(np.sum(load))
    minutes = int(known.sum())
    return StrategyFigures(
        strategy=strategy,
        minutes=minutes,
        under_provisioned_minutes=int(under.sum()),
        under_provisioned_share=float(under.mean()) if minutes else math.nan,
        unserved_requests=float(shortfall.sum()),
        unserved_share=float(shortfall.sum() / total) if total > 0 else math.nan,
        instance_hours=hours,
        instance_hours_vs_oracle=hours / oracle_hours if oracle_hours > 0 else math.nan,
        scaling_actions=actions,
        forecast=forecast,
        beyond_max_size_minutes=int(beyond.sum()),
        under_provisioned_within_reach_share=float((under & ~beyond).mean()) if minutes else math.nan,
        pool_instance_hours=pool_hours,
    )


def render_table(report: BacktestReport) -> str:
    trace, evaluation, config = report.trace, report.evaluation, report.config
    lines = [
        f"Backtest of {trace['name']}: {trace['days']:.1f} days, "
        f"{trace['known_share']:.1%} of minutes known, {scaling_statement(trace['scale_factor'], config)}",
        f"Group {report.config['min_size']}-{report.config['max_size']} instances of "
        f"{config['capacity_per_instance']:g} requests/min at {config['policy']['target_cpu_percent']:g}% "
        f"CPU, boot delay {report.config['boot_delay_minutes']} min, forecast horizon "
        f"{report.config['horizon_steps_used']} steps from the anchor, headroom quantile "
        f"{report.config['policy']['headroom_quantile']:g}",
        f"Evaluated {evaluation['start']} to {evaluation['end']} ({evaluation['days']:.1f} days, "
        f"{evaluation['reason']})",
        "",
    ]
    header = (
        f"{'strategy':<28}{'under-prov.':>12}{'beyond':>9}{'unserved':>10}{'unserved':>13}{'instance':>10}{'vs':>8}"
        f"{'scaling':>9}{'MAE':>9}{'MAPE':>8}{'SN MAE':>9}"
    )
    header2 = (
        f"{'':<28}{'minutes':>12}{'MaxSize':>9}{'share':>10}{'requests':>13}{'hours':>10}{'oracle':>8}"
        f"{'actions':>9}{'req/min':>9}{'':>8}{'same st.':>9}"
    )
    lines += [header, header2, "-" * len(header)]
    for name, fig in report.figures.items():
        forecast = fig.forecast
        mae = f"{forecast.mae:9.1f}" if forecast else f"{'':>9}"
        mape = f"{forecast.mape:8.1%}" if forecast else f"{'':>8}"
        naive = f"{forecast.seasonal_naive_mae:9.1f}" if forecast else f"{'':>9}"
        lines.append(
            f"{LABELS.get(name, name):<28}{fig.under_provisioned_share:12.3%}"
            f"{_share(fig.beyond_max_size_minutes, fig.minutes):9.3%}{fig.unserved_share:10.3%}"
            f"{fig.unserved_requests:13.4g}{fig.instance_hours:10.1f}{fig.instance_hours_vs_oracle:8.3f}"
            f"{fig.scaling_actions:9d}{mae}{mape}{naive}"
        )
    lines += _beyond_max_size_lines(report) + _warm_pool_lines(report) + render_rises(report.rises, LABELS)
    checks = report.targets()
    if checks:
        lines += ["", "Acceptance targets (predictive RF + reactive):"]
        lines += [f"  [{'met' if c.met else 'NOT met'}] {c.name}: {c.detail}" for c in checks]
    bound = report.level_bound
    if bound is not None:
        lines += [
            f"Clairvoyant-level bound: sizing each step as {bound.multiple:.2f} x the demand level "
            f"{bound.half_width_minutes} min either side (future included) keeps under-provisioning at "
            f"{bound.under_provisioned_share:.3%} (limit {bound.under_limit:.3%}) for "
            f"{bound.instance_hours_vs_oracle:.3f} x the oracle's instance-hours; log demand's "
            f"autocorrelation at the forecast horizon is {bound.horizon_autocorrelation:.2f}"
        ]
    wf = report.walk_forward
    if wf:
        lines += [
            "",
            f"Walk-forward: {wf['nights_trained']} nightly models trained, {wf['nights_refused']} nights "
            f"refused (too little history), {wf['training_seconds']:.1f}s training; "
            f"total run {report.timings['total']:.1f}s",
        ]
        tuning = wf.get("tuning")
        if tuning:
            quantiles = tuning["quantiles"]
            lines.append(
                f"Nightly shortfall goal {tuning['goal_share']:.2%}: HeadroomQuantile chosen on "
                f"{tuning['nights_tuned']} of {wf['nights_trained']} nights (the rest kept the set "
                f"value), median {float(np.median(quantiles)):g} ({min(quantiles):g}-{max(quantiles):g}); "
                f"the replay met the goal on {tuning['nights_met']} nights and was short "
                f"{tuning['replay_short_share_mean']:.3%} on average; what the next days were short "
                "is the predictive row above"
            )
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines)


def _warm_pool_lines(report: BacktestReport) -> list[str]:
    pool = report.config.get("warm_pool")
    if not pool:
        return []
    costs = ", ".join(
        f"{LABELS.get(name, name)} {fig.pool_instance_hours:.1f}"
        for name, fig in report.figures.items()
        if name != "oracle"
    )
    ready = WarmPoolSettings(**pool).ready
    return [
        f"Warm pool {pool['state']}, {pool['size']} instances (ready {ready} min after a scale-out): "
        f"its cost, included in the instance-hours above, in instance-hours: {costs}; the oracle has no pool"
    ]


def scaling_statement(scale_factor: float, config: dict[str, Any]) -> str:
    """What was done to the file's counts, as the header and the picture say it: the
    default rescales a user's own data too, so it is stated wherever the result is read."""
    if config.get("scale_factor") is None:
        return (
            f"counts scaled x{scale_factor:.3g} so that the {config['peak_percentile']:g}th percentile of "
            f"5-minute demand needs {config['peak_instances']:g} instances (--peak-instances "
            f"{config['peak_instances']:g}; --scale 1 keeps the counts as recorded)"
        )
    if scale_factor == 1.0:
        return "counts as recorded (scale 1)"
    return f"counts multiplied by {scale_factor:g} (--scale {scale_factor:g})"


def no_model_statement(days: float, min_history_days: int) -> str:
    """Why predictive equals reactive when no nightly model could be trained."""
    return (
        f"No nightly model was trained: the trace has {days:.1f} days, the first model needs "
        f"{min_history_days} days of history (MIN_HISTORY_DAYS, {MIN_USABLE_SHARE * 100:.0f} % of them "
        "known), so predictive ran as reactive alone"
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _beyond_max_size_lines(report: BacktestReport) -> list[str]:
    """Says what the 'beyond MaxSize' column is, and why the oracle is ever short."""
    oracle = report.figures.get("oracle")
    if oracle is None:
        return []
    max_size = report.config["max_size"]
    return [
        f"beyond MaxSize: of the under-provisioned minutes, those needing more than MaxSize ({max_size} "
        "instances), short for every strategy, the oracle included",
        f"  ({oracle.beyond_max_size_minutes} minutes here, of the oracle's "
        f"{oracle.under_provisioned_minutes} short ones); the rest of each strategy's share was within the "
        "group's reach",
    ]


def iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    return value
