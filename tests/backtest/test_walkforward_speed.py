"""Speed without changing the answer: nights trained in parallel give the serial run's
forecasts value for value, and `--retrain-every DAYS` replays a sparser schedule
faithfully (the model of one retrain serves until the next, and nothing else changes)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.backtest.cli import build_parser, config_from_args
from saleor_scaling.backtest.config import BacktestConfig
from saleor_scaling.backtest.runner import run_backtest
from saleor_scaling.backtest.walkforward import (
    Night,
    Trainer,
    WalkForward,
    anchor_for_decision,
    plan_nights,
    retrain_times,
    walk_forward,
)
from saleor_scaling.features import build_features, log_level
from saleor_scaling.model import ForecastModel
from saleor_scaling.series import MetricHistory
from saleor_scaling.training import TrainingConfig, TrainingRows, train_as_nightly_job
from tests.backtest.helpers import small_config, synthetic_trace
from tests.backtest.test_walkforward import reactive_history


def same_forecasts(a: WalkForward, b: WalkForward) -> None:
    for name in ("mean", "upper", "capacity"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert [comparable(night) for night in a.nights] == [comparable(night) for night in b.nights]


def comparable(night: Night) -> Night:
    """The night without its timing (and NaN, unequal to itself, as a marker)."""
    capacity = night.capacity_per_instance
    return replace(night, seconds=0.0, capacity_per_instance=-1.0 if math.isnan(capacity) else capacity)


def test_nights_in_parallel_give_the_serial_forecasts_value_for_value() -> None:
    history = reactive_history(7)
    walk = small_config().walk_forward_settings("UTC")
    serial = walk_forward(history, walk, workers=1)
    parallel = walk_forward(history, walk, workers=2)
    assert sum(night.trained for night in serial.nights) >= 4
    assert np.isfinite(serial.upper).sum() > 1000
    same_forecasts(serial, parallel)


def test_a_whole_backtest_in_parallel_has_the_serial_figures() -> None:
    trace = synthetic_trace(6, seed=5)
    serial = run_backtest(trace, small_config(workers=1)).to_json()
    parallel = run_backtest(trace, small_config(workers=2)).to_json()
    for report in (serial, parallel):
        report.pop("timings_seconds")
        report["config"].pop("workers")
        report["walk_forward"].pop("training_seconds")
    assert serial == parallel
    assert serial["walk_forward"]["nights_trained"] >= 3


Models = list[tuple[MetricHistory, ForecastModel]]


def recording(models: Models) -> Trainer:
    def trainer(
        window: MetricHistory,
        rows: TrainingRows,
        config: TrainingConfig,
        holdout_days: int,
        capacity: float,
        learned: bool,
    ) -> ForecastModel:
        model = train_as_nightly_job(window, rows, config, holdout_days, capacity, learned)
        models.append((window, model))
        return model

    return trainer


def test_retrain_every_two_days_serves_each_model_until_the_next_retrain() -> None:
    history = reactive_history(9)
    nightly_settings = small_config().walk_forward_settings("UTC")
    sparse_settings = replace(nightly_settings, retrain_every_days=2)
    nightly_models: Models = []
    sparse_models: Models = []
    nightly = walk_forward(history, nightly_settings, trainer=recording(nightly_models))
    sparse = walk_forward(history, sparse_settings, trainer=recording(sparse_models))

    # The job runs every second night of the nightly schedule, and only then.
    every_night = retrain_times(history, nightly_settings.retrain_minute_of_day)
    assert [night.retrain_time for night in sparse.nights] == every_night[::2]
    assert [night.retrain_time for night in nightly.nights] == every_night
    assert len(sparse_models) >= 2

    nightly_by_time = {night.retrain_time: night for night in nightly.nights}
    trained = [night for night in sparse.nights if night.trained]
    assert len(trained) == len(sparse_models)
    for night, (window, model) in zip(trained, sparse_models, strict=True):
        # Trained on exactly what the nightly run trained on that night ...
        same = nightly_by_time[night.retrain_time]
        assert same.trained
        assert window.end == same.cutoff
        # ... and serving two days of predict runs, up to the next retrain's first run.
        last = night is sparse.nights[-1]
        assert night.end_anchor == (len(history) if last else night.first_anchor + 2 * 288)
        anchors = np.arange(night.first_anchor, night.end_anchor)
        served = anchors[np.isfinite(sparse.upper[anchors])]
        assert last or len(served) > 288
        # Its forecasts are its own model's for every one of them, the second day included.
        features = build_features(history, sparse_settings.training.horizon_steps, "UTC")
        levels = log_level(history.demand_per_minute())
        own = model.forecast_rows(features[served], levels[served], sparse_settings.headroom_quantile)
        np.testing.assert_array_equal(sparse.upper[served], [f.demand_upper for f in own])
        # The first day is the nightly run's too (the same model); the second is not.
        day_one = served[served < night.first_anchor + 288]
        np.testing.assert_array_equal(sparse.upper[day_one], nightly.upper[day_one])
    second_days = np.concatenate(
        [
            np.arange(n.first_anchor + 288, n.end_anchor)
            for n in trained
            if n.end_anchor > n.first_anchor + 288
        ]
    )
    second_days = second_days[np.isfinite(sparse.upper[second_days])]
    assert not np.array_equal(sparse.upper[second_days], nightly.upper[second_days])


@settings(max_examples=8, deadline=None)
@given(every=st.integers(1, 5), retrain_hour=st.integers(0, 23))
def test_scheduled_nights_tile_the_anchors_after_the_first_one(every: int, retrain_hour: int) -> None:
    history = reactive_history(6)
    walk = replace(
        small_config().walk_forward_settings("UTC"),
        retrain_every_days=every,
        retrain_minute_of_day=retrain_hour * 60,
    )
    nights, to_train = plan_nights(history, walk)
    times = retrain_times(history, walk.retrain_minute_of_day)
    assert [night.retrain_time for night in nights] == times[::every]
    assert [index for index, _, _ in to_train] == [i for i, night in enumerate(nights) if night.trained]
    for before, after in itertools.pairwise(nights):
        assert before.end_anchor == after.first_anchor  # contiguous, no anchor served twice
    if nights:
        assert nights[-1].end_anchor == len(history)
        for night in nights:
            # Every anchor served is one whose predict run comes after the night.
            first_run = history.start + (night.first_anchor + 2) * history.step
            assert first_run > night.retrain_time
            assert night.first_anchor == max(
                0, anchor_for_decision(history, night.retrain_time + history.step)
            )


def test_retrain_every_and_workers_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["nasa", "--retrain-every", "7", "--workers", "1"])
    config = config_from_args(args)
    assert config.retrain_every_days == 7
    assert config.walk_forward_settings("UTC").retrain_every_days == 7
    assert config.worker_count == 1
    defaults = config_from_args(parser.parse_args(["nasa"]))
    assert defaults.retrain_every_days == 1  # nightly, as deployed
    assert defaults.worker_count >= 1
    assert "--retrain-every" in parser.format_help()
    for bad in ({"retrain_every_days": 0}, {"workers": 0}):
        with pytest.raises(ValueError, match="must be >= 1"):
            BacktestConfig(**bad)  # type: ignore[arg-type]


UNGUARDED_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
import numpy as np
from saleor_scaling.backtest.walkforward import walk_forward
from tests.backtest.helpers import small_config
from tests.backtest.test_walkforward import reactive_history

# No `if __name__ == "__main__":` guard: every spawned worker re-runs this file and dies.
history = reactive_history(5)
walk = small_config().walk_forward_settings("UTC")
parallel = walk_forward(history, walk, workers=2, progress=lambda line: print(line, file=sys.stderr))
serial = walk_forward(history, walk, workers=1)
np.testing.assert_array_equal(parallel.upper, serial.upper)
assert np.isfinite(serial.upper).any()
print("same as serial")
"""


def test_a_script_without_a_main_guard_still_gets_the_serial_result(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT.format(repo=str(repo)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "same as serial" in done.stdout
    assert "training the remaining nights serially" in done.stderr
