"""A picture of a backtest a person can read, on any trace: demand and each strategy's capacity.

Top: the whole trace, in blocks as coarse as it takes to fit the width (hourly up to 66
days, daily up to 4.4 years, then weekly: `overview_block_minutes`): demand as the
instances it needs, its block peak shaded and its block mean drawn; each strategy's mean
instances in service. Then two 3-day windows at 5-minute resolution: where reactive
scaling left the most load unserved, and where *our* strategy (the predictive one) did,
its short minutes marked along the bottom. Last: the headline figures as bars, the
acceptance targets as lines named in each panel's legend.

Every capacity panel is clipped to the group's range (0 to a little above MaxSize); demand
above MaxSize, which no strategy can serve, is marked by triangles at the top edge and
labelled "needs N > MaxSize M". Dates carry the year. Strategies are drawn from the
report's series in their order, so a strategy added to the runner appears without a change
here (its colour from `EXTRA_COLOURS`, its name from `report.LABELS` or as it is).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes

from saleor_scaling.backtest.peers import COLOURS as PEER_COLOURS
from saleor_scaling.backtest.report import (
    INSTANCE_HOURS_OF_ORACLE,
    LABELS,
    UNDER_PROVISIONED_SHARE_OF_REACTIVE,
    BacktestReport,
    no_model_statement,
)
from saleor_scaling.series import FloatArray

COLOURS = {
    "reactive": "tab:red",
    "predictive": "tab:blue",
    "seasonal-naive": "tab:green",
    "oracle": "black",
    **PEER_COLOURS,
}
EXTRA_COLOURS = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
OURS = "predictive"
"""The strategy this project deploys: the second zoom shows where it did worst."""
ZOOMED = ("reactive", OURS, "oracle")
"""What a zoom draws: nine strategies' 5-minute steps over three days are a tangle; the
others are in the overview and the bars (and `--sweep`'s frontier)."""
ZOOM_DAYS = 3
OVERVIEW_MAX_POINTS = 1600
"""About one block per pixel of the overview at the figure's width and dpi."""
OVERVIEW_BLOCKS: tuple[tuple[int, str], ...] = ((60, "hourly"), (1440, "daily"), (10080, "weekly"))
"""No 3-, 6- or 12-hour blocks: they keep the daily cycle as a zigzag, which at hundreds of
days is a solid band (seen on NYC taxi's 215 days); daily peaks show the weeks and seasons."""
HEADROOM_ABOVE_MAX_SIZE = 0.15
"""The capacity axes end this share of MaxSize above it (at least one instance)."""
OVER_MAX_COLOUR = "crimson"


def colour_of(name: str, order: list[str]) -> str:
    """The strategy's colour: the known ones fixed, others from `EXTRA_COLOURS` in order."""
    if name in COLOURS:
        return COLOURS[name]
    extras = [other for other in order if other not in COLOURS]
    return EXTRA_COLOURS[extras.index(name) % len(EXTRA_COLOURS)] if name in extras else EXTRA_COLOURS[0]


def _blocks(values: npt.NDArray[Any], size: int, how: str) -> FloatArray:
    """Block peaks or means; a last, partial block counts as a block."""
    values = np.asarray(values, dtype=np.float64)
    padded = -(-len(values) // size) * size
    shaped = np.concatenate([values, np.full(padded - len(values), np.nan)]).reshape(-1, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (gaps) stay NaN
        return np.asarray(np.nanmax(shaped, axis=1) if how == "max" else np.nanmean(shaped, axis=1))


def _times(start: int, count: int, every_minutes: int) -> FloatArray:
    """Matplotlib dates (days since 1970-01-01, its default epoch) of a regular series."""
    return np.asarray((start + np.arange(count) * every_minutes * 60) / 86400.0, dtype=np.float64)


def _date(epoch_seconds: int) -> float:
    return epoch_seconds / 86400.0


def overview_block_minutes(minutes: int) -> tuple[int, str]:
    """The finest block that puts at most `OVERVIEW_MAX_POINTS` blocks across the panel."""
    for size, name in OVERVIEW_BLOCKS:
        if -(-minutes // size) <= OVERVIEW_MAX_POINTS:
            return size, name
    return OVERVIEW_BLOCKS[-1]


def capacity_axis_top(max_size: int) -> float:
    return max_size + max(1.0, HEADROOM_ABOVE_MAX_SIZE * max_size)


def short_minutes(report: BacktestReport, name: str) -> npt.NDArray[np.bool_]:
    """Minutes whose demand exceeds the strategy's capacity in service (as `report`
    counts under-provisioning; unknown demand is short for nobody)."""
    capacity = float(report.config["capacity_per_instance"])
    load = np.nan_to_num(report.demand, nan=0.0)
    shortfall = np.maximum(load - report.series[name].serving * capacity, 0.0)
    return np.asarray(shortfall > 1e-9 * np.maximum(load, 1.0))


def worst_window(report: BacktestReport, name: str, days: int = ZOOM_DAYS) -> slice:
    """The whole days of the evaluated span where strategy `name` left the most servable
    load unserved: demand above MaxSize counts only up to MaxSize, since no strategy can
    serve the rest and it would otherwise pick the same flash crowd for everyone."""
    minutes = len(report.demand)
    span = days * 1440
    first = int(report.evaluation["first_minute"])
    if minutes - first <= span:
        return slice(max(0, minutes - span), minutes)
    capacity = float(report.config["capacity_per_instance"])
    servable = np.minimum(np.nan_to_num(report.demand), float(report.config["max_size"]) * capacity)
    shortfall = np.maximum(servable - report.series[name].serving * capacity, 0.0)
    cumulative = np.concatenate(([0.0], np.cumsum(shortfall)))
    day_starts = range(first + (-(report.start // 60 + first)) % 1440, minutes - span + 1, 1440)
    best = max(day_starts, key=lambda lo: cumulative[lo + span] - cumulative[lo], default=minutes - span)
    return slice(best, best + span)


def zoom_window(report: BacktestReport, days: int = ZOOM_DAYS) -> slice:
    """Where reactive scaling did worst (`worst_window` of "reactive")."""
    return worst_window(report, "reactive", days)


def _mark_above_max_size(axis: Axes, times: FloatArray, needed_peak: FloatArray, max_size: int) -> None:
    """MaxSize as a line; blocks whose demand needs more, as triangles at the top edge,
    the largest need written beside the first of its blocks."""
    top = capacity_axis_top(max_size)
    axis.axhline(max_size, color=OVER_MAX_COLOUR, ls="--", lw=0.8, alpha=0.7, label=f"MaxSize {max_size}")
    over = np.nan_to_num(needed_peak, nan=0.0) > max_size
    if not np.any(over):
        return
    peak = math.ceil(float(np.nanmax(needed_peak)) - 1e-9)  # whole instances: 10.2 needs 11
    edge = max_size + 0.6 * (top - max_size)
    axis.scatter(
        times[over],
        np.full(int(over.sum()), edge),
        marker="^",
        s=18,
        color=OVER_MAX_COLOUR,
        zorder=5,
        clip_on=False,
        label=f"demand needs more than MaxSize (up to {peak})",
    )
    where = int(np.nanargmax(needed_peak))
    # Written towards the middle of the panel, so that it never runs off its right edge.
    right_half = where > len(times) / 2
    axis.annotate(
        f"needs {peak} > MaxSize {max_size}",
        (times[where], edge),
        xytext=(-4 if right_half else 4, -2),
        textcoords="offset points",
        ha="right" if right_half else "left",
        va="top",
        fontsize=8,
        color=OVER_MAX_COLOUR,
        gid="over-max-size",
    )


def _date_axis(axis: Axes, fmt: str) -> None:
    axis.xaxis_date()
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.DateFormatter(fmt))  # type: ignore[no-untyped-call]


def _legend_outside(axis: Axes) -> None:
    axis.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, borderaxespad=0.0)


def _overview(axis: Axes, report: BacktestReport, needed: FloatArray, names: list[str]) -> None:
    size, block_name = overview_block_minutes(len(needed))
    max_size = int(report.config["max_size"])
    peak = _blocks(needed, size, "max")
    times = _times(report.start, len(peak), size)
    axis.fill_between(times, 0, peak, color="0.85", step="post", label=f"demand, {block_name} peak minute")
    axis.plot(
        times, _blocks(needed, size, "mean"), color="0.45", lw=0.8, drawstyle="steps-post",
        label=f"demand, {block_name} mean",
    )  # fmt: skip
    for name in names:
        if name == "oracle":
            continue
        axis.plot(
            times,
            _blocks(report.series[name].serving, size, "mean"),
            color=colour_of(name, names),
            lw=0.7,
            alpha=0.85,
            drawstyle="steps-post",
            label=f"{LABELS.get(name, name)}: in service ({block_name} mean)",
        )
    _mark_above_max_size(axis, times, peak, max_size)
    evaluated_from = _date(report.start + int(report.evaluation["first_minute"]) * 60)
    axis.axvline(evaluated_from, color="0.3", ls=":", lw=1)
    # Written up the line from the bottom: the legend is outside the axes, the over-MaxSize
    # marks are at the top, so nothing covers it.
    axis.text(
        evaluated_from,
        0.03,
        "evaluated from here ",
        transform=axis.get_xaxis_transform(),
        rotation=90,
        ha="right",
        va="bottom",
        fontsize=8,
        gid="evaluated-from",
    )
    for window, colour, label in _zoom_spans(report):
        axis.axvspan(
            _date(report.start + window.start * 60),
            _date(report.start + window.stop * 60),
            color=colour,
            alpha=0.25,
            label=label,
        )
    axis.set_ylim(0, capacity_axis_top(max_size))
    axis.set_xlim(times[0], _date(report.start + len(needed) * 60))
    axis.set_ylabel("instances")
    axis.set_title(f"Whole trace, {block_name}", loc="left", fontsize=10)
    _legend_outside(axis)
    _date_axis(axis, "%Y-%m-%d")


def _say_why_no_model(axis: Axes, report: BacktestReport) -> None:
    """Without a nightly model predictive is reactive alone, its line on reactive's: say
    so on the picture, not only in the table."""
    walk_forward = report.walk_forward
    if OURS not in report.series or not walk_forward or walk_forward.get("nights_trained"):
        return
    axis.text(
        0.5,
        0.5,
        no_model_statement(float(report.trace["days"]), int(report.config["min_history_days"])).replace(
            ", the first", ",\nthe first"
        ),
        transform=axis.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        color=COLOURS[OURS],
        bbox={"facecolor": "white", "edgecolor": COLOURS[OURS], "alpha": 0.9},
        gid="no-model",
    )


def _zoom_spans(report: BacktestReport) -> list[tuple[slice, str, str]]:
    spans = [(zoom_window(report), "gold", "zoomed: where reactive did worst")]
    if OURS in report.series:
        spans.append((worst_window(report, OURS), "tab:cyan", f"zoomed: where {OURS} did worst"))
    return spans


def _zoom(
    axis: Axes,
    report: BacktestReport,
    needed: FloatArray,
    names: list[str],
    window: slice,
    worst: str,
    same_as: str | None = None,
) -> None:
    step = 5
    max_size = int(report.config["max_size"])
    peak = _blocks(needed[window], step, "max")
    times = _times(report.start + window.start * 60, len(peak), step)
    axis.fill_between(
        times, 0, peak, color="0.8", step="post", label="demand: instances needed (5-min peak minute)"
    )
    for name in (name for name in names if name in ZOOMED or name == worst):
        style = {"ls": "--", "lw": 1.2} if name == "oracle" else {"lw": 1.1}
        axis.plot(
            times,
            _blocks(report.series[name].serving[window], step, "mean"),
            color=colour_of(name, names),
            drawstyle="steps-post",
            label=LABELS.get(name, name),
            **style,
        )
    _mark_above_max_size(axis, times, peak, max_size)
    short = np.flatnonzero(short_minutes(report, worst)[window])
    axis.scatter(
        _times(report.start + window.start * 60, len(needed[window]), 1)[short],
        np.full(len(short), 0.02),
        transform=axis.get_xaxis_transform(),
        marker="|",
        s=60,
        color=colour_of(worst, names),
        zorder=4,
        label=f"{LABELS.get(worst, worst)}: short minutes ({len(short)})",
        gid=f"short-{worst}",
    )
    axis.set_ylim(0, capacity_axis_top(max_size))
    axis.set_xlim(times[0], _date(report.start + window.stop * 60))
    axis.set_ylabel("instances in service")
    days = (window.stop - window.start) / 1440
    axis.set_title(
        f"{days:g} days where {LABELS.get(worst, worst)} left the most servable load unserved "
        "(5-minute resolution)" + (f": the same days as {same_as}'s" if same_as else ""),
        loc="left",
        fontsize=10,
    )
    _legend_outside(axis)
    _date_axis(axis, "%Y-%m-%d\n%H:%M")


def _bars(
    axis: Axes, names: list[str], values: list[float], fmt: str, limit: float | None, what: str
) -> None:
    """Bars with their values; the target as a line named in the legend. A value label
    that would sit on the line goes inside its bar (or above the line if the bar is too
    short to hold it), so that no label is crossed by the line."""
    # One line per name, slanted: nine strategies' names side by side in half the width
    # would run into each other (tested with every peer).
    labels = [LABELS.get(name, name) for name in names]
    finite = [value for value in values if np.isfinite(value)]
    top = 1.35 * max([*finite, limit or 0.0, 1e-9])
    axis.set_ylim(0, top)
    positions = np.arange(len(names))
    axis.bar(positions, np.nan_to_num(values), color=[colour_of(name, names) for name in names])
    axis.set_xticks(positions, labels, rotation=30, ha="right", rotation_mode="anchor")
    if limit is not None:
        axis.axhline(limit, color="0.3", ls=":", lw=1, label=f"target: {what}")
        axis.legend(loc="upper right", fontsize=8)
    height = 0.07 * top
    for x, value in enumerate(values):
        text = fmt.format(value) if np.isfinite(value) else "n/a"
        y, va, colour = value, "bottom", "black"
        if limit is not None and value <= limit <= value + height:
            if value >= 1.5 * height:
                y, va, colour = value - 0.01 * top, "top", "white"
            else:
                y = limit + 0.01 * top
        axis.text(x, y, text, ha="center", va=va, fontsize=8, color=colour, gid="bar-value")
    axis.tick_params(axis="x", labelsize=8)


def plot(report: BacktestReport, path: str | Path) -> Path:
    """Write the report's figure as a PNG at `path`."""
    path = Path(path)
    figure = draw(report)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw(report: BacktestReport) -> Any:
    """The figure (a matplotlib Figure; the caller closes it)."""
    capacity = float(report.config["capacity_per_instance"])
    needed = report.demand / capacity
    names = list(report.series)
    zooms = [("reactive", zoom_window(report))]
    if OURS in report.series:
        zooms.append((OURS, worst_window(report, OURS)))
    figure = plt.figure(figsize=(16, 5 + 3.6 * len(zooms)), constrained_layout=True)
    grid = figure.add_gridspec(2 + len(zooms), 2, height_ratios=[1.0, *[1.2] * len(zooms), 1.0])
    scaling = report.trace.get("scaling")
    figure.suptitle(
        f"Backtest of {report.trace['name']}: demand and capacity per strategy "
        f"(boot delay {report.config['boot_delay_minutes']} min, group "
        f"{report.config['min_size']}-{report.config['max_size']} x {capacity:g} requests/min)"
        + (f"\n{scaling}" if scaling else ""),
        fontsize=13,
    )
    overview = figure.add_subplot(grid[0, :])
    _overview(overview, report, needed, names)
    _say_why_no_model(overview, report)
    for row, (worst, window) in enumerate(zooms, start=1):
        same_as = next((other for other, shown in zooms[: row - 1] if shown == window), None)
        _zoom(figure.add_subplot(grid[row, :]), report, needed, names, window, worst, same_as)
    figure_names = list(report.figures)
    under = [100 * report.figures[name].under_provisioned_share for name in figure_names]
    cost = [report.figures[name].instance_hours_vs_oracle for name in figure_names]
    bars_under = figure.add_subplot(grid[-1, 0])
    reactive = report.figures.get("reactive")
    limit = 100 * UNDER_PROVISIONED_SHARE_OF_REACTIVE * reactive.under_provisioned_share if reactive else None
    _bars(bars_under, figure_names, under, "{:.2f}%", limit, f"1/5 of reactive ({limit or 0:.2f}%)")
    bars_under.set_ylabel("% of minutes under-provisioned")
    bars_under.set_title("Minutes with demand above capacity at target CPU", loc="left", fontsize=10)
    bars_cost = figure.add_subplot(grid[-1, 1])
    _bars(
        bars_cost,
        figure_names,
        cost,
        "{:.3f}",
        INSTANCE_HOURS_OF_ORACLE,
        f"{INSTANCE_HOURS_OF_ORACLE:g} x oracle",
    )
    bars_cost.set_ylabel("instance-hours / oracle's")
    bars_cost.set_title("Cost relative to the oracle", loc="left", fontsize=10)
    return figure
