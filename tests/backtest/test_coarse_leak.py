"""A coarse trace must not leak its next step into any strategy (issue 13, part 1).

Two 30-minute traces, read by the real loader (linear resampling, the default for steps
longer than 5 minutes), are the same but for one step at noon of the last day, which is
ten times the load in the second. Target tracking is made blind for the span that matters
(its datapoints reach the alarms two hours late), so any capacity that rises comes from a
forecast or from predict's own reactive floor: what the strategies read of the metric
history. Until that step has closed and the usual delay passed, no strategy may behave
differently on the two traces; once it is visible, they must.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from saleor_scaling.backtest.report import BacktestReport
from saleor_scaling.backtest.runner import run_backtest
from saleor_scaling.backtest.traces import load_trace
from tests.backtest.helpers import MONDAY, small_config

STEP_MINUTES = 30
DAYS = 4
JUMP_STEP = (DAYS - 1) * 48 + 24  # noon of the last day
DELAY_MINUTES = 5
VISIBLE_MINUTE = (JUMP_STEP + 1) * STEP_MINUTES + DELAY_MINUTES
"""The first minute at which the jump's step has closed and been read (a predict run)."""
JUMP_MINUTE = JUMP_STEP * STEP_MINUTES


def write_trace(path: Path, jump: float) -> Path:
    """Requests per 30-minute step: about 300 a minute with a mild daily cycle, and the
    step at noon of the last day multiplied by `jump`."""
    steps = np.arange(DAYS * 48)
    per_minute = 300.0 * (1.0 + 0.2 * np.sin(steps / 48.0 * 2 * math.pi))
    per_minute[JUMP_STEP] *= jump
    with path.open("w") as handle:
        handle.write("timestamp,value\n")
        for step, rate in zip(steps.tolist(), per_minute.tolist(), strict=True):
            stamp = np.datetime64(MONDAY + step * STEP_MINUTES * 60, "s").astype(str).replace("T", " ")
            handle.write(f"{stamp},{rate * STEP_MINUTES:.3f}\n")
    return path


def backtest(tmp_path: Path, jump: float) -> BacktestReport:
    trace = load_trace(write_trace(tmp_path / f"jump{jump:g}.csv", jump))
    assert trace.source_step_minutes == STEP_MINUTES
    assert trace.resample == "linear"
    config = small_config(scale_factor=1.0, alarm_delay_minutes=120)
    return run_backtest(trace, config)


def test_no_strategy_foresees_a_tenfold_step_before_it_closes(tmp_path: Path) -> None:
    flat, jumped = backtest(tmp_path, 1.0), backtest(tmp_path, 10.0)
    first_model = flat.walk_forward["first_model"]
    assert first_model is not None, "a model must serve at the jump"
    assert first_model < "2023-11-23 12:00", "a model must serve at the jump"
    # The simulated demand itself leaks (interpolation), so the test is sharp: the minutes
    # before the jump already differ between the two traces.
    assert not np.allclose(flat.demand[:JUMP_MINUTE], jumped.demand[:JUMP_MINUTE])
    # Seen in 30-minute units; the forecast reaches the last run sharing an anchor.
    assert flat.trace["observation_unit_minutes"] == STEP_MINUTES
    assert flat.config["horizon_steps_used"] == small_config().horizon + STEP_MINUTES // 5 - 1
    # The oracle and AWS predictive scaling fed a perfect forecast of every hour know the
    # future by design (they are the limits the report draws); every other strategy reads
    # only what CloudWatch held.
    clairvoyant = ("reactive", "oracle", "aws-predictive-perfect")
    strategies = [name for name in flat.series if name not in clairvoyant]
    assert {"predictive", "seasonal-naive", "aws-predictive-patterns", "phpa", "crane-dsp"} <= set(strategies)
    for name in strategies:
        before, after = flat.series[name].billed, jumped.series[name].billed
        np.testing.assert_array_equal(
            before[:VISIBLE_MINUTE],
            after[:VISIBLE_MINUTE],
            err_msg=f"{name} changed capacity before the jump's step could be read",
        )
    # ... and once it can be read, the strategies act on it (the test is not vacuous).
    # (Not target tracking at a lower target: it reads only the alarms, blinded here; nor
    # AWS's patterns forecast: it reads the history only at its 6-hourly refresh.)
    late = slice(VISIBLE_MINUTE, VISIBLE_MINUTE + 30)
    slow = ("reactive-lower", "aws-predictive-patterns")
    for name in (name for name in strategies if name not in slow):
        assert np.max(jumped.series[name].billed[late]) > np.max(flat.series[name].billed[late]), name


def test_every_decision_before_the_step_closes_reads_the_same_metrics(tmp_path: Path) -> None:
    """The inputs of each predict run (its anchor, the sized-up forecast and the reactive
    floor) are the same on both traces until the step is visible, then differ."""
    flat, jumped = backtest(tmp_path, 1.0), backtest(tmp_path, 10.0)
    assert set(flat.decisions) == set(jumped.decisions) >= {"predictive", "seasonal-naive"}
    for name, log in flat.decisions.items():
        other = jumped.decisions[name]
        early = [i for i, minute in enumerate(log.minutes) if minute < VISIBLE_MINUTE]
        assert early
        assert [other.minutes[i] for i in early] == [log.minutes[i] for i in early]
        for field in ("anchors", "forecasts", "floors", "predicted"):
            mine, theirs = getattr(log, field), getattr(other, field)
            assert [theirs[i] for i in early] == [mine[i] for i in early], (name, field)
        # The newest visible bucket at each run is the last of a closed 30-minute step.
        for minute, anchor in zip(log.minutes, log.anchors, strict=True):
            step_end = (anchor + 1) * 5
            assert step_end % STEP_MINUTES == 0
            assert step_end + DELAY_MINUTES <= minute < step_end + 35
        at_visible = log.minutes.index(VISIBLE_MINUTE)
        assert other.floors[at_visible] > log.floors[at_visible] or (
            other.forecasts[at_visible] > 5 * log.forecasts[at_visible]
        ), name
