"""Which condition explains the spread of the headroom factor? (issue 23, item 3)

    PYTHONPATH=src python scripts/headroom_conditions.py nasa --days 20
    PYTHONPATH=src python scripts/headroom_conditions.py nab-elb

Replays the backtest's walk-forward on a shared trace (defaults, target tracking's history,
as `--sweep` does) and takes, per anchor, the factor the nightly table measures: the
busiest minute at the forecast target over the forecast mean of the model that served
that anchor (out of sample: every model learned from the nights before). Then:

1. each candidate condition, computed at the anchor from what predict reads, against the
   factor: Spearman's rank correlation, and the 0.6 and 0.9 quantiles of the factor in the
   condition's terciles;
2. sizings replayed as the nightly job fits them: each day sized from quantiles fitted
   on the two days before it (the nightly job's two held-out days), at quantiles 0.5 to
   0.97; the cost (sum of sized / sum of busiest minutes) at equal share of steps whose
   busiest minute exceeded the sizing, relative to today's four bands of forecast size.

A measuring script: the figures are in docs/backtest.md, "Conditional headroom".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from scipy.stats import spearmanr

from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import Observation
from saleor_scaling.backtest.runner import observed_settings, prepare_trace
from saleor_scaling.backtest.traces import load_trace
from saleor_scaling.backtest.walkforward import walk_forward
from saleor_scaling.headroom import burstiness_scale, recent_burstiness
from saleor_scaling.series import Metric
from saleor_scaling.simulation.simulator import TargetTracking, simulate

Array = np.ndarray
QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97)
MISS_SHARES = (0.05, 0.1, 0.2, 0.3, 0.4)


def shifted(values: Array, steps: int) -> Array:
    """values[i - steps] at i, NaN off the ends."""
    out = np.full(len(values), np.nan)
    if steps > 0:
        out[steps:] = values[:-steps]
    elif steps < 0:
        out[:steps] = values[-steps:]
    else:
        out[:] = values
    return out


def trailing(values: Array, steps: int, reduce: Callable[..., Array]) -> Array:
    with np.errstate(all="ignore"):
        return np.asarray(reduce(np.vstack([shifted(values, k) for k in range(steps)]), axis=0))


def band_quantiles(fit_by: Array, fit_factor: Array, by: Array, bands: int, quantile: float) -> Array:
    """Per row of `by`, the `quantile` of the fitted factors in its band of `fit_by`
    (bands at the fitted rows' quantiles, as `fit_headroom` cuts them)."""
    edges = np.unique(np.quantile(fit_by, np.linspace(0, 1, bands + 1)[1:-1]))
    fitted = np.searchsorted(edges, fit_by, side="right")
    # A constant condition (NAB's burstiness) leaves bands empty: they take every row's.
    values = np.array(
        [
            np.quantile(fit_factor[fitted == band] if np.any(fitted == band) else fit_factor, quantile)
            for band in range(len(edges) + 1)
        ]
    )
    return values[np.searchsorted(edges, by, side="right")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--days", type=float)
    args = parser.parse_args()

    config = BacktestConfig(days=args.days, workers=1)
    scaled = prepare_trace(load_trace(args.trace), config)
    group = config.group_settings()
    tracking = TargetTracking(config.target_tracking_settings(with_predictive=False))
    observation = Observation.of_trace(scaled)
    history = observation.observe(
        metric_history(scaled.start, simulate(scaled.demand, group, tracking), group)
    )
    forest = walk_forward(history, observed_settings(config, scaled, observation), workers=1)

    horizon = forest.horizon_steps
    demand = history.demand_per_minute()
    busiest = history[Metric.BUSIEST_MINUTE]
    mean = forest.mean
    truth = shifted(busiest, -horizon)
    factor = np.minimum(truth / np.maximum(mean, 1.0), 10.0)
    log_demand = np.log1p(demand)
    with np.errstate(all="ignore"):
        step_burst = np.clip(busiest / demand, 1.0, 5.0)
    stamps = history.start + history.step * np.arange(len(history))
    conditions = {
        "forecast size": mean,
        "hour of day": (stamps % 86400) / 3600.0,
        "dispersion of log demand, last hour": trailing(log_demand, 12, np.nanstd),
        "dispersion of log demand, last 30 min": trailing(log_demand, 6, np.nanstd),
        "burstiness, anchor step": step_burst,
        "burstiness, last 15 min": trailing(step_burst, 3, np.nanmean),
        "burstiness, last hour": recent_burstiness(history),
        "busiest minute of the hour / its mean": trailing(busiest, 12, np.nanmax)
        / np.maximum(trailing(demand, 12, np.nanmean), 1.0),
        "jump: log demand - last hour's": np.abs(
            log_demand - shifted(trailing(log_demand, 12, np.nanmean), 1)
        ),
    }
    known = np.isfinite(factor) & np.isfinite(mean)
    print(f"{args.trace}: {int(known.sum())} anchors with a factor; median {np.median(factor[known]):.3f}")
    print(f"{'condition':<40} {'rho':>7}   factor q0.6 / q0.9 in its terciles (low, mid, high)")
    for name, values in conditions.items():
        usable = known & np.isfinite(values)
        if usable.sum() < 100 or np.ptp(values[usable]) == 0:
            print(f"{name:<40} {'-':>7}   constant or unknown")
            continue
        x, y = values[usable], factor[usable]
        edges = np.quantile(x, [1 / 3, 2 / 3])
        tercile = np.searchsorted(edges, x, side="right")
        cells = [np.quantile(y[tercile == k], [0.6, 0.9]) for k in range(3) if np.any(tercile == k)]
        text = ", ".join(f"{low:.2f}/{high:.2f}" for low, high in cells)
        print(f"{name:<40} {spearmanr(x, y).statistic:+7.3f}   {text}")

    day = (stamps - stamps[0]) // 86400
    burstiness = recent_burstiness(history)
    scale = burstiness_scale(burstiness)
    fill = np.where(np.isfinite(burstiness), burstiness, 1.0)

    def today(fit: Array, use: Array, q: float) -> Array:
        return band_quantiles(mean[fit], factor[fit], mean[use], 4, q)

    def scaled_by_burstiness(fit: Array, use: Array, q: float) -> Array:
        return scale[use] * band_quantiles(mean[fit], factor[fit] / scale[fit], mean[use], 4, q)

    def burstiness_bands(fit: Array, use: Array, q: float) -> Array:
        return band_quantiles(fill[fit], factor[fit], fill[use], 3, q)

    def two_by_two(fit: Array, use: Array, q: float) -> Array:
        # 4 bands of forecast size x 2 of burstiness: the cell of each row.
        out = np.empty(int(use.sum()))
        size_edges = np.unique(np.quantile(mean[fit], [0.25, 0.5, 0.75]))
        burst_edge = np.quantile(fill[fit], [0.5])
        cell_fit = np.searchsorted(size_edges, mean[fit], side="right") * 2 + np.searchsorted(
            burst_edge, fill[fit], side="right"
        )
        cell_use = np.searchsorted(size_edges, mean[use], side="right") * 2 + np.searchsorted(
            burst_edge, fill[use], side="right"
        )
        for cell in np.unique(cell_use):
            members = factor[fit][cell_fit == cell]
            out[cell_use == cell] = np.quantile(members if len(members) else factor[fit], q)
        return out

    sizers = {
        "today: 4 bands of forecast size": today,
        "scaled by sqrt(burstiness, last hour)": scaled_by_burstiness,
        "3 bands of burstiness alone": burstiness_bands,
        "4 size bands x 2 burstiness bands": two_by_two,
    }
    curves: dict[str, list[tuple[float, float]]] = {}
    for name, sizer in sizers.items():
        curve = []
        for q in QUANTILES:
            sized = np.full(len(mean), np.nan)
            for today_index in range(2, int(day.max()) + 1):
                fit = known & (day >= today_index - 2) & (day < today_index)
                use = known & (day == today_index)
                if fit.sum() >= 96 and use.any():
                    sized[use] = mean[use] * np.maximum(sizer(fit, use, q), 1.0)
            judged = np.isfinite(sized)
            curve.append(
                (
                    float(np.mean(truth[judged] > sized[judged])),
                    float(np.sum(sized[judged]) / np.sum(truth[judged])),
                )
            )
        curves[name] = sorted(curve)

    def cost_at(curve: list[tuple[float, float]], share: float) -> float:
        return float(np.interp(share, [s for s, _ in curve], [c for _, c in curve]))

    base = curves["today: 4 bands of forecast size"]
    header = " ".join(f"{share:>7.0%}" for share in MISS_SHARES)
    print(f"\ncost (sized / busiest) at equal share of steps over the sizing; vs today\n{'':<40} {header}")
    for name, curve in curves.items():
        costs = " ".join(f"{cost_at(curve, share):7.3f}" for share in MISS_SHARES)
        relative = " ".join(f"{cost_at(curve, s) / cost_at(base, s) - 1:+7.1%}" for s in MISS_SHARES)
        print(f"{name:<40} {costs}\n{'':<40} {relative}")


if __name__ == "__main__":
    main()
