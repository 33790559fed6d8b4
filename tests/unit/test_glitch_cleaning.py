"""A glitch is missing data, not load; a real rise is load. And the demand ceiling basis
the manifest carries is one no handful of datapoints can move.

`series.drop_glitches`: a RequestCount (or busiest-minute) datapoint is a glitch when it is
more than 10x both the median of its known neighbours within 15 minutes either side and the
series' median, and more than 10 robust standard deviations (1.4826 x MAD) above that
neighbourhood median. Expected values below are written from that rule, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from saleor_scaling.backtest.walkforward import training_window
from saleor_scaling.series import Metric, MetricHistory, clean_training_window, drop_glitches
from saleor_scaling.training import demand_ceiling_basis, training_rows
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400


def history_of(request_counts: list[float] | np.ndarray, busiest: list[float] | None = None) -> MetricHistory:
    requests = np.asarray(request_counts, dtype=np.float64)
    steps = len(requests)
    values = {metric: np.full(steps, np.nan) for metric in Metric}
    values[Metric.REQUESTS] = requests.copy()
    if busiest is not None:
        values[Metric.BUSIEST_MINUTE] = np.asarray(busiest, dtype=np.float64)
    return MetricHistory(start=MONDAY, values=values)


def test_one_huge_datapoint_is_dropped_and_nothing_else():
    counts = [100.0] * 20
    counts[10] = 6e6
    cleaned, dropped = drop_glitches(history_of(counts))
    assert dropped == 1
    expected = [100.0] * 20
    expected[10] = np.nan
    assert np.array_equal(cleaned[Metric.REQUESTS], expected, equal_nan=True)


def test_the_input_history_is_not_changed():
    counts = [100.0] * 20
    counts[10] = 1e12
    original = history_of(counts)
    drop_glitches(original)
    assert original[Metric.REQUESTS][10] == 1e12


@pytest.mark.parametrize("first", [0, 5, 18])  # at the start, in the middle, at the end
def test_two_adjacent_glitches_are_both_dropped(first):
    counts = [100.0] * 20
    counts[first] = counts[first + 1] = 1e12
    cleaned, dropped = drop_glitches(history_of(counts))
    assert dropped == 2
    assert np.isnan(cleaned[Metric.REQUESTS][first : first + 2]).all()


def test_three_in_a_row_are_dropped_four_in_a_row_are_a_burst():
    """A burst of 15 minutes at 20x is read as a glitch; 20 minutes is load: each of its
    steps then has at least 3 of its 6 neighbours in the burst, so their median is half-way."""
    three = [100.0] * 20
    three[8:11] = [2000.0] * 3
    _, dropped = drop_glitches(history_of(three))
    assert dropped == 3
    four = [100.0] * 20
    four[8:12] = [2000.0] * 4
    cleaned, dropped = drop_glitches(history_of(four))
    assert dropped == 0
    assert np.array_equal(cleaned[Metric.REQUESTS], four)


def test_a_point_ten_times_its_neighbours_is_kept_just_above_is_dropped():
    counts = [100.0] * 20
    counts[10] = 1000.0
    assert drop_glitches(history_of(counts))[1] == 0
    counts[10] = 1000.5
    assert drop_glitches(history_of(counts))[1] == 1


def test_a_noisy_neighbourhood_needs_ten_robust_deviations():
    """Neighbours 50 and 250, three of each: median 150, MAD 100, so the bar is 150 + 10 x
    1.4826 x 100 = 1,632.6, above 10 x 150: a point of 1,600 is kept, one of 1,700 dropped."""
    counts = [100.0] * 20
    counts[7:14] = [50.0, 250.0, 50.0, 1600.0, 250.0, 50.0, 250.0]
    assert drop_glitches(history_of(counts))[1] == 0
    counts[10] = 1700.0
    assert drop_glitches(history_of(counts))[1] == 1


def test_a_burst_in_a_quiet_night_is_not_a_glitch_below_five_times_the_series_median():
    """At night the neighbours hold 10 a step, the shop's median is 1,000: a step of 9,000
    is 900x its neighbours but under 10x the shop's median, so it is kept (a crawler, an
    e-mail going out); one of 10,001 is dropped."""
    counts = [1000.0] * 30 + [10.0] * 9
    counts[34] = 9000.0
    assert drop_glitches(history_of(counts))[1] == 0
    counts[34] = 10001.0
    assert drop_glitches(history_of(counts))[1] == 1


def test_a_point_with_fewer_than_three_known_neighbours_is_not_judged():
    counts = [np.nan] * 20
    counts[9], counts[10], counts[11] = 100.0, 1e12, 100.0
    _, dropped = drop_glitches(history_of(counts))
    assert dropped == 0
    counts[12] = 100.0
    cleaned, dropped = drop_glitches(history_of(counts))
    assert dropped == 1
    assert np.isnan(cleaned[Metric.REQUESTS][10])


def test_the_busiest_minute_of_a_glitched_step_goes_too_and_is_judged_itself():
    counts = [500.0] * 20
    busiest = [120.0] * 20
    counts[4] = 6e6
    busiest[15] = 1e9
    cleaned, dropped = drop_glitches(history_of(counts, busiest))
    assert dropped == 2  # the RequestCount of step 4 and the busiest minute of step 15
    assert np.isnan(cleaned[Metric.BUSIEST_MINUTE][4])
    assert np.isnan(cleaned[Metric.BUSIEST_MINUTE][15])
    assert cleaned[Metric.REQUESTS][15] == 500.0
    assert np.sum(np.isnan(cleaned[Metric.BUSIEST_MINUTE])) == 2


def test_a_tenfold_rise_that_lasts_hours_is_kept_whole():
    history = synthetic_history(MONDAY, 3, peak_per_minute=4000.0, seed=1)
    values = {metric: array.copy() for metric, array in history.values.items()}
    values[Metric.REQUESTS][384:456] *= 10  # 08:00-14:00 on day 1 at 10x, from a step to a step
    values[Metric.BUSIEST_MINUTE][384:456] *= 10
    viral = MetricHistory(start=MONDAY, values=values)
    cleaned, dropped = drop_glitches(viral)
    assert dropped == 0
    assert np.array_equal(cleaned[Metric.REQUESTS], viral[Metric.REQUESTS])


def test_the_training_window_drops_impossible_values_then_glitches():
    counts = [100.0] * 20
    counts[3], counts[12] = -1.0, 1e12
    window = clean_training_window(history_of(counts))
    assert (window.impossible_values, window.glitches) == (1, 1)
    assert np.isnan(window.history[Metric.REQUESTS][[3, 12]]).all()


# --- the ceiling basis -------------------------------------------------------------------


def test_the_basis_is_the_999th_permille_of_the_demand_the_rows_saw_so_nine_points_cannot_move_it():
    """28 days (8,064 steps) at 1,000 a minute with a real busy spell of ten steps at 5,000:
    the 0.999 quantile of the 8,064 values the rows saw (the lower of the two neighbouring
    order statistics: position 8,063 x 0.999 = 8,054.9) is the tenth largest, 5,000. Nine
    datapoints of 1e12 a minute leave it at 5,000; a tenth moves it (and cleaning drops
    such points before they get here)."""
    per_minute = np.full(28 * 288, 1000.0)
    per_minute[5000:5010] = 5000.0
    history = history_of(per_minute * 5)
    assert demand_ceiling_basis(history, training_rows(history, 4, "UTC"), 4) == 5000.0
    poisoned = per_minute.copy()
    poisoned[100:1000:100] = 1e12  # nine
    history = history_of(poisoned * 5)
    assert demand_ceiling_basis(history, training_rows(history, 4, "UTC"), 4) == 5000.0
    poisoned[7000] = 1e12  # a tenth
    history = history_of(poisoned * 5)
    assert demand_ceiling_basis(history, training_rows(history, 4, "UTC"), 4) == 1e12


def test_an_idle_shop_still_gets_a_positive_basis():
    history = history_of(np.zeros(10 * 288))
    assert demand_ceiling_basis(history, training_rows(history, 4, "UTC"), 4) == 1.0


def test_the_backtests_nightly_window_drops_the_glitch_the_nightly_job_drops():
    """The walk-forward replays retraining: its window is cleaned the same way, or the
    backtest would judge a model production never trains."""
    history = synthetic_history(MONDAY, 12, peak_per_minute=4000.0, seed=2)
    values = {metric: array.copy() for metric, array in history.values.items()}
    glitch_at = MONDAY + 5 * 86400 + 18 * 3600
    values[Metric.REQUESTS][(glitch_at - MONDAY) // 300] = 6e6
    poisoned = MetricHistory(start=MONDAY, values=values)

    window = training_window(poisoned, MONDAY + 11 * 86400 + 3 * 3600 + 15 * 60, 28)

    assert np.isnan(window[Metric.REQUESTS][window.index_of(glitch_at)])
    assert int(np.sum(np.isnan(window[Metric.REQUESTS]))) == 1 + int(
        np.sum(np.isnan(history.window(window.start, window.end)[Metric.REQUESTS]))
    )
