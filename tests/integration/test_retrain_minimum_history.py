"""The first model needs MIN_HISTORY_DAYS (9) less gaps: the known history must span the
9 days, and at least 75 % of their steps must be usable. A week of perfect history used to
pass the count alone and promote a model that had never seen its weekly features twice."""

from __future__ import annotations

import numpy as np
import pytest

from saleor_scaling.local.emulator import create_shop
from saleor_scaling.model import ModelNotFoundError
from saleor_scaling.series import Metric, MetricHistory
from tests.conftest import load_handler, synthetic_history
from tests.integration.conftest import MONDAY, emitted_metrics
from tests.integration.test_retrain_handler import RetrainWorld

STEPS_PER_DAY = 288


@pytest.fixture
def retrain_world(aws, monkeypatch) -> RetrainWorld:
    """The retrain handler against an emulated shop; each test seeds its own history."""
    shop = create_shop(aws, desired=6, max_size=20)
    for name, value in shop.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("N_ESTIMATORS", "30")
    return RetrainWorld(aws, shop, load_handler("retrain"), MetricHistory.empty(MONDAY, 0))


def young_shop(days: int, gap_share: float = 0.0) -> tuple[MetricHistory, int]:
    """A shop `days` old at the nightly run (03:15 UTC), every metric missing in
    `gap_share` of its steps: outages in the middle, none in the held-out last 2 days or at
    either end (so the span is the shop's age)."""
    history = synthetic_history(MONDAY, days + 1, peak_per_minute=12_000.0, seed=5)
    missing = round(gap_share * days * STEPS_PER_DAY)
    values = {metric: array.copy() for metric, array in history.values.items()}
    blocks = 4
    first, last = STEPS_PER_DAY // 2, (days - 2) * STEPS_PER_DAY  # days 0.5 .. days-2
    stride = (last - first) // blocks
    for block in range(blocks):
        size = missing // blocks + (1 if block < missing % blocks else 0)
        start = first + block * stride
        assert size <= stride, "the gaps must fit between the edges"
        for array in values.values():
            array[start : start + size] = np.nan
    retrain_at = MONDAY + days * 86400 + 3 * 3600 + 15 * 60
    return MetricHistory(start=history.start, values=values), retrain_at


def run(world: RetrainWorld, days: int, gap_share: float = 0.0) -> dict[str, object]:
    history, now = young_shop(days, gap_share)
    shop = RetrainWorld(world.session, world.shop, world.handler, history)
    shop.seed(now, cloudwatch_days=days + 1)  # all of it still in CloudWatch
    return shop.invoke(now)


def test_a_week_of_perfect_history_is_refused_naming_the_minimum(retrain_world, capsys):
    result = run(retrain_world, 7)

    assert result["status"] == "refused", result["reason"]
    reason = str(result["reason"])
    assert "MIN_HISTORY_DAYS 9 days" in reason
    assert "spans 7.1 days" in reason
    assert emitted_metrics(capsys.readouterr().out)["Refused"] == 1
    with pytest.raises(ModelNotFoundError):
        retrain_world.registry().current()


def test_nine_days_with_a_fifth_missing_are_enough(retrain_world):
    result = run(retrain_world, 9, gap_share=0.20)

    assert result["status"] != "refused", result["reason"]
    assert result["status"] == "promoted", result["reason"]
    assert retrain_world.registry().current().training_end


def test_nine_days_with_three_tenths_missing_are_refused(retrain_world):
    result = run(retrain_world, 9, gap_share=0.30)

    assert result["status"] == "refused", result["reason"]
    reason = str(result["reason"])
    assert "spans 9.1 days" in reason  # long enough, but too much of it is missing
    assert "at least 1944 usable rows" in reason
    with pytest.raises(ModelNotFoundError):
        retrain_world.registry().current()


def test_the_gap_fixture_removes_what_it_says():
    history, _ = young_shop(9, gap_share=0.30)
    missing = int(np.sum(np.isnan(history[Metric.REQUESTS][: 9 * STEPS_PER_DAY])))
    assert missing == round(0.30 * 9 * STEPS_PER_DAY)
