"""A picture of a backtest a person can read: demand and each strategy's capacity.

Top: the whole trace, hourly (demand as the instances it needs, its hourly peak shaded;
each strategy's mean instances in service). Middle: a 3-day window at 5-minute resolution,
the one where reactive scaling left the most load unserved, so that the strategies'
differences show. Bottom: the headline figures as bars.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from saleor_scaling.backtest.peers import COLOURS as PEER_COLOURS
from saleor_scaling.backtest.report import LABELS, BacktestReport
from saleor_scaling.series import FloatArray

COLOURS = {
    "reactive": "tab:red",
    "predictive": "tab:blue",
    "seasonal-naive": "tab:green",
    "oracle": "black",
    **PEER_COLOURS,
}
ZOOM_DAYS = 3


def _blocks(values: npt.NDArray[Any], size: int, how: str) -> FloatArray:
    usable = len(values) // size * size
    shaped = np.asarray(values[:usable], dtype=np.float64).reshape(-1, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (gaps) stay NaN
        return np.asarray(np.nanmax(shaped, axis=1) if how == "max" else np.nanmean(shaped, axis=1))


def _times(start: int, count: int, every_minutes: int) -> FloatArray:
    """Matplotlib dates (days since 1970-01-01, its default epoch) of a regular series."""
    return np.asarray((start + np.arange(count) * every_minutes * 60) / 86400.0, dtype=np.float64)


def _date(epoch_seconds: int) -> float:
    return epoch_seconds / 86400.0


def zoom_window(report: BacktestReport, days: int = ZOOM_DAYS) -> slice:
    """The whole days of the evaluated span where reactive left the most load unserved."""
    minutes = len(report.demand)
    span = days * 1440
    first = int(report.evaluation["first_minute"])
    if minutes - first <= span:
        return slice(max(0, minutes - span), minutes)
    reactive = report.series["reactive"].serving
    shortfall = np.nan_to_num(
        np.maximum(report.demand - reactive * report.config["capacity_per_instance"], 0.0)
    )
    cumulative = np.concatenate(([0.0], np.cumsum(shortfall)))
    day_starts = range(first + (-(report.start // 60 + first)) % 1440, minutes - span + 1, 1440)
    best = max(day_starts, key=lambda lo: cumulative[lo + span] - cumulative[lo], default=minutes - span)
    return slice(best, best + span)


def plot(report: BacktestReport, path: str | Path) -> Path:
    """Write the report's figure as a PNG at `path`."""
    path = Path(path)
    capacity = float(report.config["capacity_per_instance"])
    needed = report.demand / capacity
    figure = plt.figure(figsize=(15, 11), constrained_layout=True)
    grid = figure.add_gridspec(3, 2, height_ratios=[1.0, 1.3, 0.8])
    full = figure.add_subplot(grid[0, :])
    zoom = figure.add_subplot(grid[1, :])
    bars_under = figure.add_subplot(grid[2, 0])
    bars_cost = figure.add_subplot(grid[2, 1])
    title = report.trace["name"]
    figure.suptitle(
        f"Backtest of {title}: demand and capacity per strategy "
        f"(boot delay {report.config['boot_delay_minutes']} min, group "
        f"{report.config['min_size']}-{report.config['max_size']} x {capacity:g} requests/min)",
        fontsize=13,
    )

    hourly_peak = _blocks(needed, 60, "max")
    hourly_mean = _blocks(needed, 60, "mean")
    hours = _times(report.start, len(hourly_peak), 60)
    full.fill_between(hours, 0, hourly_peak, color="0.85", step="post", label="demand, hourly peak minute")
    full.plot(hours, hourly_mean, color="0.45", lw=0.8, drawstyle="steps-post", label="demand, hourly mean")
    for name, series in report.series.items():
        if name == "oracle":
            continue
        full.plot(
            hours,
            _blocks(series.serving, 60, "mean"),
            color=COLOURS.get(name, "tab:purple"),
            lw=0.7,
            alpha=0.85,
            drawstyle="steps-post",
            label=f"{LABELS.get(name, name)}: in service",
        )
    evaluated_from = _date(report.start + int(report.evaluation["first_minute"]) * 60)
    full.axvline(evaluated_from, color="0.3", ls=":", lw=1)
    full.text(
        evaluated_from,
        0.98,
        " evaluated from here",
        transform=full.get_xaxis_transform(),
        va="top",
        fontsize=8,
    )
    window = zoom_window(report)
    full.axvspan(
        _date(report.start + window.start * 60),
        _date(report.start + window.stop * 60),
        color="gold",
        alpha=0.25,
        label="zoomed below",
    )
    full.set_ylabel("instances")
    full.set_title("Whole trace, hourly", loc="left", fontsize=10)
    full.legend(loc="upper left", fontsize=8, ncol=3)
    full.xaxis_date()
    full.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))  # type: ignore[no-untyped-call]

    step = 5
    zoom_needed = _blocks(needed[window], step, "max")
    zoom_times = _times(report.start + window.start * 60, len(zoom_needed), step)
    zoom.fill_between(
        zoom_times,
        0,
        zoom_needed,
        color="0.8",
        step="post",
        label="demand: instances needed (5-min peak minute)",
    )
    for name, series in report.series.items():
        style = {"ls": "--", "lw": 1.2} if name == "oracle" else {"lw": 1.1}
        zoom.plot(
            zoom_times,
            _blocks(series.serving[window], step, "mean"),
            color=COLOURS.get(name, "tab:purple"),
            drawstyle="steps-post",
            label=LABELS.get(name, name),
            **style,
        )
    zoom.set_ylabel("instances in service")
    zoom.set_title(
        f"{ZOOM_DAYS} days where reactive scaling left the most load unserved (5-minute resolution)",
        loc="left",
        fontsize=10,
    )
    zoom.legend(loc="upper left", fontsize=8, ncol=5)
    zoom.xaxis_date()
    zoom.xaxis.set_major_formatter(mdates.DateFormatter("%b %d %H:%M"))  # type: ignore[no-untyped-call]

    names = list(report.figures)
    labels = [LABELS.get(name, name).replace(" + ", "\n+ ").replace(" (", "\n(") for name in names]
    colours = [COLOURS.get(name, "tab:purple") for name in names]
    under = [100 * report.figures[name].under_provisioned_share for name in names]
    cost = [report.figures[name].instance_hours_vs_oracle for name in names]
    bars_under.bar(labels, under, color=colours)
    if "reactive" in report.figures:
        limit = 20 * report.figures["reactive"].under_provisioned_share
        bars_under.axhline(limit, color="0.3", ls=":", lw=1)
        bars_under.text(len(names) - 0.5, limit, " 1/5 of reactive", va="bottom", ha="right", fontsize=8)
    bars_under.set_ylabel("% of minutes under-provisioned")
    bars_under.set_title("Minutes with demand above capacity at target CPU", loc="left", fontsize=10)
    bars_cost.bar(labels, cost, color=colours)
    bars_cost.axhline(1.15, color="0.3", ls=":", lw=1)
    bars_cost.text(len(names) - 0.5, 1.15, " 1.15 x oracle", va="bottom", ha="right", fontsize=8)
    bars_cost.set_ylabel("instance-hours / oracle's")
    bars_cost.set_title("Cost relative to the oracle", loc="left", fontsize=10)
    for axis, values, fmt in ((bars_under, under, "{:.2f}%"), (bars_cost, cost, "{:.3f}")):
        for x, value in enumerate(values):
            axis.text(x, value, fmt.format(value), ha="center", va="bottom", fontsize=8)
        axis.tick_params(axis="x", labelsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
