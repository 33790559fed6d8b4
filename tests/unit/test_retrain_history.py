"""How retraining gathers its window: which days it asks CloudWatch for, and how."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from saleor_scaling.local.memory import MemoryArchive as BaseMemoryArchive
from saleor_scaling.local.memory import MemoryMetrics
from saleor_scaling.retrain_service import RetrainPorts, collect_history
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ConfigurationError, ModelLocation, RetrainSettings, horizon_steps_for
from tests.conftest import synthetic_history

START = 1_700_438_400  # a Monday, 00:00 UTC
DAY = 86400


class MemoryArchive(BaseMemoryArchive):
    def __init__(self) -> None:
        super().__init__()
        self.stored = MetricHistory.empty(START, 0)


def ports(cloudwatch: MemoryMetrics, archive: MemoryArchive) -> RetrainPorts:
    return RetrainPorts(metrics=cloudwatch, archive=archive, models=Any, notifier=Any)  # type: ignore[arg-type]


def settings(**overrides: Any) -> RetrainSettings:
    values: dict[str, Any] = {
        "auto_scaling_group_name": "saleor-api",
        "load_balancer_full_name": "app/alb/1",
        "model": ModelLocation(bucket="b"),
    }
    values.update(overrides)
    return RetrainSettings(**values)


def test_first_night_reads_the_window_a_day_per_call_and_backs_it_up():
    history = synthetic_history(START, 30)
    now = START + 30 * DAY + 3 * 3600
    cloudwatch, archive = MemoryMetrics(history), MemoryArchive()
    collected, report = collect_history(now, settings(), ports(cloudwatch, archive))

    assert all(end - start <= DAY for start, end in cloudwatch.requests)
    assert report.days_fetched == len(cloudwatch.requests) == 29  # 28 days straddle 29 UTC days
    assert collected.end == now - now % 300 - 300
    assert collected.start == collected.end - 28 * DAY
    backed_up = archive.read(collected.start, collected.end)[Metric.REQUESTS]
    assert np.array_equal(backed_up, collected[Metric.REQUESTS], equal_nan=True)
    assert np.isfinite(collected[Metric.REQUESTS][: -3 * 12]).all()  # the trace ends at midnight


def test_later_nights_read_only_recent_days_and_gaps():
    history = synthetic_history(START, 31)
    cloudwatch, archive = MemoryMetrics(history), MemoryArchive()
    collect_history(START + 30 * DAY + 3 * 3600, settings(), ports(cloudwatch, archive))
    cloudwatch.requests.clear()

    collect_history(START + 31 * DAY + 3 * 3600, settings(), ports(cloudwatch, archive))
    refreshed_days = {start // DAY for start, _ in cloudwatch.requests}
    # The retrain day's first hours, yesterday, and the day before: late datapoints land there.
    assert refreshed_days == {START // DAY + 29, START // DAY + 30, START // DAY + 31}


def test_days_beyond_cloudwatch_retention_come_only_from_the_backup():
    history = synthetic_history(START, 101)
    now = START + 100 * DAY + 3 * 3600
    archive = MemoryArchive()
    archive.write(history.window(START, START + 40 * DAY))
    cloudwatch = MemoryMetrics(history)
    collected, _ = collect_history(now, settings(training_window_days=90), ports(cloudwatch, archive))

    oldest_asked = min(start for start, _ in cloudwatch.requests)
    assert now - oldest_asked <= 63 * DAY
    requests = collected[Metric.REQUESTS]
    # 90 days: the oldest from the backup (which ends at day 40), the last 63 from
    # CloudWatch, and between them a gap that stays a gap.
    stamps = collected.timestamps()
    from_backup = stamps < START + 40 * DAY
    from_cloudwatch = stamps >= oldest_asked
    assert np.isfinite(requests[from_backup]).all()
    assert np.isfinite(requests[from_cloudwatch]).all()
    assert np.isnan(requests[~from_backup & ~from_cloudwatch]).all()


def test_gaps_stay_missing_and_impossible_values_are_dropped():
    history = synthetic_history(START, 30)
    values = dict(history.values)
    requests = values[Metric.REQUESTS].copy()
    requests[5000:5100] = np.nan  # an outage
    requests[6000] = -3.0  # a corrupt datapoint
    values[Metric.REQUESTS] = requests
    broken = MetricHistory(start=START, values=values)
    collected, report = collect_history(
        START + 30 * DAY + 3 * 3600, settings(), ports(MemoryMetrics(broken), MemoryArchive())
    )
    offset = (collected.start - START) // 300
    assert np.isnan(collected[Metric.REQUESTS][5000 - offset : 5100 - offset]).all()
    assert np.isnan(collected[Metric.REQUESTS][6000 - offset])
    assert report.impossible_values_dropped == 1


@pytest.mark.parametrize(
    ("lead_minutes", "horizon"),
    [(1, 3), (5, 3), (10, 4), (12, 5), (30, 8)],
)
def test_horizon_covers_anchor_age_and_lead_time(lead_minutes, horizon):
    assert horizon_steps_for(lead_minutes) == horizon


def test_retrain_settings_from_environment():
    env = {
        "AUTO_SCALING_GROUP_NAME": "g",
        "LOAD_BALANCER_FULL_NAME": "app/x/1",
        "MODEL_BUCKET": "b",
        "TRAINING_WINDOW_DAYS": "60",
        "LEAD_TIME_MINUTES": "15",
    }
    loaded = RetrainSettings.from_env(env)
    assert loaded.training_window_days == 60
    assert loaded.horizon_steps == 5
    assert loaded.history_prefix == "history/g"


@pytest.mark.parametrize(
    "overrides",
    [
        {"TRAINING_WINDOW_DAYS": "5"},
        {"HOLDOUT_DAYS": "0"},
        {"LEAD_TIME_MINUTES": "500"},
        {"N_ESTIMATORS": "5000"},
        {"MAX_DEPTH": "many"},
        {"PROMOTION_TOLERANCE": "2"},
    ],
)
def test_bad_retrain_settings_fail_with_the_variable_named(overrides):
    env = {
        "AUTO_SCALING_GROUP_NAME": "g",
        "LOAD_BALANCER_FULL_NAME": "app/x/1",
        "MODEL_BUCKET": "b",
        **overrides,
    }
    with pytest.raises(ConfigurationError, match=next(iter(overrides))):
        RetrainSettings.from_env(env)
