"""The backtest's picture, read through matplotlib's figure objects (Agg, nothing shown):
the capacity axes end just above MaxSize and mark what needs more, long traces are
aggregated and dated with the year, the zooms land where reactive and where predictive did
worst (its short minutes marked), and no label hides behind a legend or a target line."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.text import Text

from saleor_scaling.backtest.peers import LABELS as PEER_LABELS
from saleor_scaling.backtest.plot import (
    OVERVIEW_MAX_POINTS,
    ZOOM_DAYS,
    capacity_axis_top,
    draw,
    overview_block_minutes,
    plot,
    worst_window,
    zoom_window,
)
from saleor_scaling.backtest.report import LABELS, BacktestReport, StrategySeries, strategy_figures
from tests.backtest.helpers import MONDAY

CAPACITY = 1000.0
DAY = 1440


def report_of(
    demand: np.ndarray[Any, Any],
    serving: dict[str, np.ndarray[Any, Any]],
    *,
    first_minute: int = 0,
    max_size: int = 10,
    start: int = MONDAY,
) -> BacktestReport:
    """A report as the runner builds it, from hand-made per-minute series."""
    window = slice(first_minute, len(demand))
    oracle = serving["oracle"]
    figures = {
        name: strategy_figures(name, demand, s, s, 0, CAPACITY, window, oracle) for name, s in serving.items()
    }
    return BacktestReport(
        trace={"name": "hand-made", "days": len(demand) / DAY},
        config={
            "capacity_per_instance": CAPACITY,
            "max_size": max_size,
            "min_size": 1,
            "boot_delay_minutes": 5,
        },
        evaluation={"first_minute": first_minute},
        figures=figures,
        full_span=figures,
        walk_forward={},
        level_bound=None,
        timings={},
        start=start,
        demand=demand,
        series={name: StrategySeries(s, s) for name, s in serving.items()},
    )


def steady(days: int, needed: float = 4.0) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    demand = np.full(days * DAY, needed * CAPACITY * 0.9)
    serving = {
        name: np.full(days * DAY, int(needed), dtype=np.int64)
        for name in ("reactive", "predictive", "seasonal-naive", "oracle")
    }
    return demand, serving


def axes_titled(figure: Any, words: str) -> list[Axes]:
    return [axis for axis in figure.axes if words in axis.get_title(loc="left")]


def overview(figure: Any) -> Axes:
    (axis,) = axes_titled(figure, "Whole trace")
    return axis


def zooms(figure: Any) -> list[Axes]:
    return axes_titled(figure, "left the most servable load unserved")


def over_max_marks(axis: Axes) -> PathCollection:
    (marks,) = [c for c in axis.collections if "more than MaxSize" in str(c.get_label())]
    assert isinstance(marks, PathCollection)
    return marks


def offsets(marks: PathCollection) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(marks.get_offsets(), dtype=np.float64)


def test_a_flash_crowd_far_above_max_size_does_not_squash_the_capacity_axes() -> None:
    demand, serving = steady(10)
    crowd = slice(5 * DAY + 600, 5 * DAY + 660)
    demand[crowd] = 90 * CAPACITY  # needs 90 instances, MaxSize is 10
    for name, series in serving.items():
        series[crowd] = 10 if name == "oracle" else 5  # short of servable load: both zooms show it
    figure = draw(report_of(demand, serving, first_minute=2 * DAY))
    try:
        capacity_axes = [overview(figure), *zooms(figure)]
        assert len(capacity_axes) == 3
        for axis in capacity_axes:
            bottom, top = axis.get_ylim()
            assert bottom == 0
            assert 10 < top == capacity_axis_top(10) <= 12
            # ... and what is above is marked at the top edge, inside the figure.
            marks = over_max_marks(axis)
            heights = offsets(marks)[:, 1]
            assert np.all((heights > 10) & (heights < top))
            assert any("needs 90 > MaxSize 10" in text.get_text() for text in axis.texts)
        # The overview marks the crowd's hour and nothing else.
        hours = offsets(over_max_marks(overview(figure)))[:, 0]
        assert len(hours) == 1
        assert hours[0] == pytest.approx((MONDAY + (5 * DAY + 600) * 60) / 86400.0)
    finally:
        plt.close(figure)


def test_no_over_max_size_marks_where_demand_fits() -> None:
    demand, serving = steady(5)
    figure = draw(report_of(demand, serving, first_minute=DAY))
    try:
        for axis in [overview(figure), *zooms(figure)]:
            assert not [c for c in axis.collections if "more than MaxSize" in str(c.get_label())]
            assert any(line.get_label() == "MaxSize 10" for line in axis.get_lines())
    finally:
        plt.close(figure)


def test_multi_year_trace_is_aggregated_to_fit_and_dated_with_the_year() -> None:
    days = 3 * 365
    minutes = days * DAY
    rng = np.random.default_rng(3)
    demand = np.repeat(rng.uniform(1000, 6000, days * 24), 60)
    serving = {name: np.full(minutes, 6, dtype=np.int64) for name in ("reactive", "predictive", "oracle")}
    start = int(datetime(2021, 1, 1, tzinfo=UTC).timestamp())
    figure = draw(report_of(demand, serving, first_minute=10 * DAY, start=start))
    try:
        axis = overview(figure)
        assert "daily" in axis.get_title(loc="left")
        for line in axis.get_lines():
            assert len(line.get_xdata()) <= OVERVIEW_MAX_POINTS  # type: ignore[arg-type]
        figure.canvas.draw()
        labels = [tick.get_text() for tick in axis.get_xticklabels() if tick.get_text()]
        years = {label[:4] for label in labels}
        assert {"2021", "2022", "2023"} <= years, labels
        for zoom in zooms(figure):
            assert all(tick.get_text()[:4] in {"2021", "2022", "2023"} for tick in zoom.get_xticklabels())
    finally:
        plt.close(figure)


@pytest.mark.parametrize(
    ("days", "block"),
    [(10, 60), (66, 60), (67, 1440), (215, 1440), (365, 1440), (3 * 365, 1440), (6 * 365, 10080)],
)
def test_overview_blocks_grow_with_the_trace(days: int, block: int) -> None:
    size, _ = overview_block_minutes(days * DAY)
    assert size == block
    assert -(-days * DAY // size) <= OVERVIEW_MAX_POINTS or size == 10080


def test_zooms_land_where_each_strategy_did_worst_and_mark_predictives_short_minutes() -> None:
    demand, serving = steady(12)
    # Reactive is short on day 4, predictive on days 8-9 (a 3-day window from day 7 or 8
    # holds all of it), and everybody is capped on day 10 by a crowd above MaxSize, which
    # no strategy could serve and must not draw either zoom.
    reactive_short = slice(4 * DAY + 100, 4 * DAY + 400)
    serving["reactive"][reactive_short] = 1
    predictive_short = np.r_[8 * DAY + 50 : 8 * DAY + 80, 9 * DAY + 700 : 9 * DAY + 720]
    serving["predictive"][predictive_short] = 2
    crowd = slice(10 * DAY, 10 * DAY + 600)
    demand[crowd] = 40 * CAPACITY
    for series in serving.values():
        series[crowd] = 10
    report = report_of(demand, serving, first_minute=DAY + 200)

    reactive_window = zoom_window(report)
    assert reactive_window.start <= reactive_short.start
    assert reactive_short.stop <= reactive_window.stop
    ours = worst_window(report, "predictive")
    assert ours.start <= predictive_short.min()
    assert predictive_short.max() < ours.stop
    for window in (reactive_window, ours):
        assert window.stop - window.start == ZOOM_DAYS * DAY
        assert ((MONDAY // 60) + window.start) % DAY == 0  # whole days
        assert window.start >= report.evaluation["first_minute"]

    figure = draw(report)
    try:
        reactive_axis, ours_axis = zooms(figure)
        assert "reactive" in reactive_axis.get_title(loc="left")
        assert "predictive" in ours_axis.get_title(loc="left")
        assert "the same days" not in ours_axis.get_title(loc="left")
        assert reactive_axis.get_xlim()[0] == pytest.approx((MONDAY + reactive_window.start * 60) / 86400)
        assert ours_axis.get_xlim()[0] == pytest.approx((MONDAY + ours.start * 60) / 86400)
        (marks,) = [c for c in ours_axis.collections if c.get_gid() == "short-predictive"]
        assert isinstance(marks, PathCollection)
        # Predictive's short minutes in its window: its own, and the crowd's (above MaxSize)
        # where it lies inside the window.
        expected = {
            minute
            for minute in range(ours.start, ours.stop)
            if demand[minute] > serving["predictive"][minute] * CAPACITY
        }
        assert set(predictive_short) <= expected
        shown = np.rint(offsets(marks)[:, 0] * 1440 - MONDAY / 60).astype(int)
        assert set(shown.tolist()) == expected
        assert f"short minutes ({len(expected)})" in str(marks.get_label())
    finally:
        plt.close(figure)


def test_a_trace_shorter_than_the_zoom_is_zoomed_whole() -> None:
    demand, serving = steady(2)
    report = report_of(demand, serving, first_minute=300)
    assert zoom_window(report) == slice(0, 2 * DAY)
    assert worst_window(report, "predictive") == slice(0, 2 * DAY)
    figure = draw(report)
    try:
        first, second = zooms(figure)
        assert "the same days" not in first.get_title(loc="left")
        assert "the same days as reactive's" in second.get_title(loc="left")
    finally:
        plt.close(figure)


def overlaps(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def test_evaluated_from_here_is_never_behind_a_legend() -> None:
    demand, serving = steady(10)
    # Evaluated from early on: the old label sat under the legend at the top left.
    for first in (60, 2 * DAY, 9 * DAY):
        figure = draw(report_of(demand, serving, first_minute=first))
        try:
            figure.canvas.draw()
            renderer = figure.canvas.get_renderer()
            axis = overview(figure)
            (label,) = [text for text in axis.texts if text.get_gid() == "evaluated-from"]
            box = label.get_window_extent(renderer)
            for legend in [a.get_legend() for a in figure.axes if a.get_legend() is not None]:
                assert not overlaps(box, legend.get_window_extent(renderer))
            assert overlaps(box, axis.get_window_extent(renderer))
        finally:
            plt.close(figure)


def test_bar_labels_are_clear_of_the_target_lines() -> None:
    demand, serving = steady(10)
    # Reactive short 20 % of the evaluated minutes; predictive a hair under the limit of
    # 1/5 of that, so its label would sit on the line; cost near 1.15 x the oracle.
    evaluated = slice(DAY, 10 * DAY)
    minutes = np.arange(evaluated.start, evaluated.stop)
    serving["reactive"][minutes[::5]] = 1
    serving["predictive"][minutes[::26]] = 1
    serving["seasonal-naive"][:] = 5
    figure = draw(report_of(demand, serving, first_minute=evaluated.start))
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        bar_axes = [axis for axis in figure.axes if axis.patches and axis.get_legend() is not None]
        bar_axes = [axis for axis in bar_axes if "target" in axis.get_legend().get_texts()[0].get_text()]
        assert len(bar_axes) == 2
        for axis in bar_axes:
            (target,) = [line for line in axis.get_lines() if "target" in str(line.get_label())]
            line_y = axis.transData.transform((0, target.get_ydata()[0]))[1]
            labels: list[Text] = [text for text in axis.texts if text.get_gid() == "bar-value"]
            assert len(labels) == 4
            legend_box = axis.get_legend().get_window_extent(renderer)
            for label in labels:
                box = label.get_window_extent(renderer)
                assert not box.y0 <= line_y <= box.y1, label.get_text()
                assert not overlaps(box, legend_box), label.get_text()
                assert overlaps(box, axis.get_window_extent(renderer))
    finally:
        plt.close(figure)


def test_every_strategy_of_the_report_is_drawn_with_its_own_colour(tmp_path: Path) -> None:
    demand, serving = steady(8)
    serving["peer-autoscaler"] = serving["reactive"] + 1
    report = report_of(demand, serving, first_minute=DAY)
    figure = draw(report)
    try:
        # (the zooms draw reactive, ours and the oracle only: test below)
        for axis in [overview(figure)]:
            peer = [line for line in axis.get_lines() if "peer-autoscaler" in str(line.get_label())]
            assert len(peer) == 1
            others = {line.get_color() for line in axis.get_lines() if line is not peer[0]}
            assert peer[0].get_color() not in others
    finally:
        plt.close(figure)
    assert plot(report, tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.parametrize("crowd_day", [0.5, 5.0, 9.95])
def test_the_over_max_size_label_stays_inside_its_panel(crowd_day: float) -> None:
    demand, serving = steady(10)
    crowd = slice(int(crowd_day * DAY), int(crowd_day * DAY) + 30)
    demand[crowd] = 24.3 * CAPACITY  # 24.3 instances of load need 25
    figure = draw(report_of(demand, serving, first_minute=DAY))
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        axis = overview(figure)
        (label,) = [text for text in axis.texts if text.get_gid() == "over-max-size"]
        assert label.get_text() == "needs 25 > MaxSize 10"
        box, frame = label.get_window_extent(renderer), axis.get_window_extent(renderer)
        assert frame.x0 <= box.x0 <= box.x1 <= frame.x1
        assert frame.y0 <= box.y0 <= box.y1 <= frame.y1
    finally:
        plt.close(figure)


def test_bar_names_do_not_run_into_each_other_with_every_peer() -> None:
    demand, serving = steady(8)
    for name in PEER_LABELS:
        serving[name] = serving["reactive"] + 1
    figure = draw(report_of(demand, serving, first_minute=DAY))
    try:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        bar_axes = [
            axis for axis in figure.axes if axis.get_title(loc="left").startswith(("Minutes", "Cost"))
        ]
        assert len(bar_axes) == 2
        for axis in bar_axes:
            names = [label for label in axis.get_xticklabels() if label.get_text()]
            assert {label.get_text() for label in names} >= set(PEER_LABELS.values())
            # Slanted names are parallel lines of text: apart by the tick spacing times the
            # sine of the slant, which must exceed a line's height; each stays on the figure.
            ticks = [axis.transData.transform((tick, 0))[0] for tick in axis.get_xticks()]
            spacing = min(abs(b - a) for a, b in itertools.pairwise(ticks))
            for label in names:
                height = label.get_fontsize() * figure.dpi / 72
                slant = math.radians(label.get_rotation())
                assert 0 < slant < math.pi / 2
                assert spacing * math.sin(slant) > height, label.get_text()
                assert label.get_window_extent(renderer).y0 >= 0, label.get_text()
    finally:
        plt.close(figure)


def test_zooms_draw_reactive_ours_and_the_oracle_not_every_peer() -> None:
    demand, serving = steady(8)
    for name in PEER_LABELS:
        serving[name] = serving["reactive"] + 1
    report = report_of(demand, serving, first_minute=DAY)
    figure = draw(report)
    try:
        zooms = [axis for axis in figure.axes if axis.get_title(loc="left").startswith("3 days")]
        assert len(zooms) == 2
        wanted = {LABELS[name] for name in ("reactive", "predictive", "oracle")}
        for axis in zooms:
            drawn = {
                str(line.get_label())
                for line in axis.get_lines()
                if not str(line.get_label()).startswith("_")
            }
            assert wanted <= drawn
            assert not drawn & set(PEER_LABELS.values())
        (overview,) = [axis for axis in figure.axes if axis.get_title(loc="left").startswith("Whole trace")]
        overview_labels = " ".join(str(line.get_label()) for line in overview.get_lines())
        assert all(label in overview_labels for label in PEER_LABELS.values())
    finally:
        plt.close(figure)


# --- what the reader of a user's own backtest is told on the picture ---------------------------


def figure_texts(figure: Any) -> str:
    texts = [figure.get_suptitle()] + [text.get_text() for text in figure.findobj(Text)]
    return "\n".join(texts)


def test_the_picture_says_how_the_counts_were_scaled() -> None:
    from saleor_scaling.backtest.config import BacktestConfig
    from saleor_scaling.backtest.runner import run_backtest
    from tests.backtest.helpers import synthetic_trace

    trace = synthetic_trace(2)
    as_recorded = run_backtest(trace, BacktestConfig(strategies=("reactive", "oracle"), scale_factor=1.0))
    figure = draw(as_recorded)
    try:
        text = figure_texts(figure)
        # Before: the picture said nothing of the scaling (the table said "scaled x1 so the
        # 99.9th percentile ... needs 8 instances", a fixed string, whatever was applied).
        assert "counts as recorded (scale 1)" in text
        assert "percentile" not in text
    finally:
        plt.close(figure)
    rescaled = run_backtest(trace, BacktestConfig(strategies=("reactive", "oracle")))
    figure = draw(rescaled)
    try:
        assert re.search(
            r"\ncounts scaled x\d+(\.\d+)? so that the 99\.9th percentile of 5-minute demand needs 8 "
            r"instances \(--peak-instances 8; --scale 1 keeps the counts as recorded\)",
            figure.get_suptitle(),
        )
    finally:
        plt.close(figure)


def test_the_picture_says_why_predictive_equals_reactive_on_too_short_a_trace() -> None:
    from saleor_scaling.backtest.config import BacktestConfig
    from saleor_scaling.backtest.runner import run_backtest
    from tests.backtest.helpers import synthetic_trace

    report = run_backtest(
        synthetic_trace(4), BacktestConfig(strategies=("reactive", "predictive", "oracle"), n_estimators=5)
    )
    assert report.walk_forward["nights_trained"] == 0
    np.testing.assert_array_equal(report.series["predictive"].serving, report.series["reactive"].serving)
    figure = draw(report)
    try:
        (note,) = [text for text in figure.findobj(Text) if text.get_gid() == "no-model"]
        # Before: the two lines lay on each other and the picture did not say why.
        assert note.get_text().replace("\n", " ") == (
            "No nightly model was trained: the trace has 4.0 days, the first model needs 9 days of "
            "history (MIN_HISTORY_DAYS, 75 % of them known), so predictive ran as reactive alone"
        )
    finally:
        plt.close(figure)
