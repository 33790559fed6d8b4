"""The observed history: what a strategy may read of a coarse trace, and when.

Per-minute and 5-minute traces must be observed exactly as before (the documented NASA and
NAB figures rest on it); a coarser trace's bucket is visible only once its source step has
closed, and nothing visible depends on a step that has not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling import STEP_SECONDS
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.observed import DELAY_SECONDS, PER_MINUTE, Observation
from saleor_scaling.backtest.traces import TRACE_FILES, load_trace, resample_steps
from saleor_scaling.backtest.walkforward import training_window
from saleor_scaling.series import Metric, MetricHistory, floor_to_step
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS
from saleor_scaling.simulation.simulator import (
    GroupSettings,
    TargetTracking,
    TargetTrackingSettings,
    simulate,
)
from tests.backtest.helpers import MONDAY, synthetic_trace
from tests.conftest import require_trace

STEPS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 10, 15, 20, 30, 45, 60, 90, 1440])
TIMES = st.integers(MONDAY, MONDAY + 400 * 86400)


def observation(step: int, origin_minute: int) -> Observation:
    if step % 5 == 0:
        origin_minute -= origin_minute % 5  # the loader puts such steps on the 5-minute grid
    return Observation(source_step_minutes=step, source_origin=origin_minute * 60)


def simulated_history(demand: np.ndarray, start: int = MONDAY) -> MetricHistory:
    """A fixed fleet large enough never to scale or saturate: CPU is linear in demand."""
    group = GroupSettings(min_size=40, max_size=40)
    record = simulate(demand, group, TargetTracking(TargetTrackingSettings()))
    return metric_history(start, record, group)


@settings(max_examples=300, deadline=None)
@given(TIMES, st.integers(0, 10_000), st.sampled_from([1, 5]))
def test_single_bucket_units_keep_the_old_rules(time: int, origin_minute: int, step: int) -> None:
    seen = observation(step, origin_minute)
    assert seen.buckets_per_unit == 1
    start = MONDAY - 86400
    assert seen.visible_end(time) == floor_to_step(time) - STEP_SECONDS
    decision_step = (time - start) // STEP_SECONDS
    assert seen.anchor(start, time) == decision_step - ANCHOR_OFFSET_STEPS
    anchor = decision_step - ANCHOR_OFFSET_STEPS
    assert seen.unit_span(start, anchor) == (anchor * 5, anchor * 5 + 5)
    assert seen.horizon_steps(3) == 3


def test_single_bucket_units_observe_the_history_unchanged() -> None:
    history = simulated_history(synthetic_trace(2).demand)
    for seen in (PER_MINUTE, Observation(5, MONDAY), Observation(1, MONDAY + 7 * 60)):
        assert seen.observe(history) is history
    # The nightly job's cutoff is the old one: the bucket before the one still filling.
    for retrain in (MONDAY + 86400 + 3 * 3600 + 15 * 60, MONDAY + 86400 + 3 * 3600 + 17 * 60 + 30):
        window = training_window(history, retrain, 0)
        assert window.end == floor_to_step(retrain) - STEP_SECONDS


@pytest.mark.parametrize(("short", "unit"), [("nasa", 5), ("nab-elb", 5), ("nyc-taxi", 30)])
def test_shared_traces_observation_units(short: str, unit: int) -> None:
    require_trace(TRACE_FILES[short])
    trace = load_trace(short)
    seen = Observation.of_trace(trace)
    assert seen.unit_minutes == unit
    # Units start on the trace's own step boundaries (NYC: on the hour and half hour).
    assert (trace.start - seen.unit_origin) % seen.unit_seconds == 0


@settings(max_examples=500, deadline=None)
@given(STEPS, st.integers(0, 10_000), TIMES, st.integers(0, 7200))
def test_a_bucket_is_visible_only_once_every_step_in_it_has_closed(
    step: int, origin_minute: int, time: int, later: int
) -> None:
    seen = observation(step, origin_minute)
    end = seen.visible_end(time)
    closed = time - DELAY_SECONDS
    assert end % STEP_SECONDS == 0
    assert end <= closed
    # The source step holding the newest visible minute ends by then (computed from the
    # source grid itself, not from the units).
    origin = seen.source_origin // 60
    last_minute = end // 60 - 1
    step_end = origin + ((last_minute - origin) // step + 1) * step
    assert step_end * 60 <= closed
    # Maximal: the next unit has not closed.
    assert end + seen.unit_seconds > closed
    # Never un-sees a bucket.
    assert seen.visible_end(time + later) >= end
    assert seen.anchor(MONDAY, time) == (end - MONDAY) // STEP_SECONDS - 1


def test_thirty_minute_units_aggregate_their_own_minutes_only() -> None:
    totals = np.array([3000.0, 6000.0, np.nan, 9000.0, 30000.0, 1500.0])
    demand = resample_steps(totals, 30, "linear")
    observed = Observation(30, MONDAY).observe(simulated_history(demand))
    requests = observed[Metric.REQUESTS].reshape(-1, 6)
    np.testing.assert_allclose(requests.sum(axis=1), totals, rtol=1e-12)
    assert np.all((requests == requests[:, :1]) | np.isnan(requests))
    assert np.isnan(observed.busiest_minute()).all()
    cpu = observed[Metric.CPU].reshape(-1, 6)
    np.testing.assert_allclose(cpu[:, 0], 70.0 * totals / 30.0 / (40 * 1000.0), rtol=1e-12)
    # The gap step is unknown, the fleet's counts are not.
    assert np.isnan(cpu[2]).all()
    assert (observed[Metric.IN_SERVICE] == 40).all()
    # A unit only partly inside the history is unknown.
    shifted = Observation(30, MONDAY + 10 * 60).observe(simulated_history(demand))
    assert np.isnan(shifted[Metric.REQUESTS][:2]).all()
    assert np.isfinite(shifted[Metric.REQUESTS][2:8]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([10, 15, 30, 60]),
    st.sampled_from(["even", "linear"]),
    st.lists(st.floats(100.0, 50_000.0), min_size=8, max_size=24),
    st.data(),
)
def test_nothing_visible_depends_on_a_step_that_has_not_closed(
    step: int, method: str, totals: list[float], data: st.DataObject
) -> None:
    per_step = np.array(totals)
    seen = Observation(step, MONDAY)
    minutes = len(per_step) * step
    time = MONDAY + data.draw(st.integers(0, minutes * 60), label="decision time")
    open_steps = [j for j in range(len(per_step)) if MONDAY + (j + 1) * step * 60 > time - DELAY_SECONDS]
    if not open_steps:
        return
    changed = per_step.copy()
    j = data.draw(st.sampled_from(open_steps), label="changed step")
    changed[j] = data.draw(st.sampled_from([0.0, 10.0 * per_step[j], math.nan]), label="new total")
    visible = max(0, (seen.visible_end(time) - MONDAY) // STEP_SECONDS)

    def observed(values: np.ndarray) -> MetricHistory:
        return seen.observe(simulated_history(resample_steps(values, step, method)))

    before, after = observed(per_step), observed(changed)
    for metric in Metric:
        np.testing.assert_allclose(
            after[metric][:visible], before[metric][:visible], rtol=1e-9, equal_nan=True, err_msg=metric
        )


def test_the_simulated_minutes_themselves_leak_which_is_why_they_are_not_read() -> None:
    """Without the observation, the buckets of the step before a tenfold one move 10
    minutes after they close, while the tenfold step is still open."""
    totals = np.full(12, 9000.0)
    jumped = totals.copy()
    jumped[8] *= 10
    time = MONDAY + 8 * 30 * 60 + 4 * 60  # 4 minutes into the tenfold step
    seen = Observation(30, MONDAY)
    visible = max(0, (seen.visible_end(time) - MONDAY) // STEP_SECONDS)
    raw = [simulated_history(resample_steps(t, 30, "linear")) for t in (totals, jumped)]
    readable_before = (floor_to_step(time) - STEP_SECONDS - MONDAY) // STEP_SECONDS
    readable = [history[Metric.REQUESTS][:readable_before] for history in raw]
    assert not np.allclose(readable[0], readable[1])
    observed = [seen.observe(history) for history in raw]
    np.testing.assert_allclose(observed[0][Metric.REQUESTS][:visible], observed[1][Metric.REQUESTS][:visible])


def test_the_nightly_window_ends_where_visibility_ends() -> None:
    history = Observation(30, MONDAY).observe(
        simulated_history(resample_steps(np.full(48 * 3, 9000.0), 30, "linear"))
    )
    seen = Observation(30, MONDAY)
    night = MONDAY + 86400 + 3 * 3600 + 15 * 60
    assert training_window(history, night, 0, seen).end == MONDAY + 86400 + 3 * 3600
    # At 03:04 the 02:30-03:00 step has closed but not been read yet.
    assert training_window(history, night - 11 * 60, 0, seen).end == MONDAY + 86400 + 2 * 3600 + 30 * 60


def test_coarse_horizon_reaches_the_last_run_sharing_an_anchor() -> None:
    seen = Observation(30, MONDAY)
    horizon = 3
    for run in range(MONDAY + 3600, MONDAY + 3 * 3600, STEP_SECONDS):
        anchor = seen.anchor(MONDAY, run)
        runs = [
            t
            for t in range(MONDAY, MONDAY + 4 * 3600, STEP_SECONDS)
            if seen.anchor(MONDAY, t) == anchor and t >= MONDAY + 2 * STEP_SECONDS
        ]
        # Every run sharing the anchor wants anchor-of-old-rule + horizon; the last wants most.
        wanted = max((t - MONDAY) // STEP_SECONDS - ANCHOR_OFFSET_STEPS + horizon for t in runs)
        assert anchor + seen.horizon_steps(horizon) == wanted
