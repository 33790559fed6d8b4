"""A model grows in stages. Before MIN_DAILY_HISTORY_DAYS (2) nothing is trained and a
warm-up notice tells predict that is expected; from 2 days a daily-stage model (no weekly
features, judged against the same time yesterday); the full model needs MIN_HISTORY_DAYS
(9) less gaps: the known history must span the 9 days, and at least 75 % of their steps
must be usable. A week of perfect history used to pass the count alone and promote a model
that had never seen its weekly features twice; now it grows a daily-stage model that
cannot use them."""

from __future__ import annotations

import numpy as np
import pytest

from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.local.emulator import create_shop
from saleor_scaling.model import ModelNotFoundError, ServingBounds, load_verified
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
    blocks = 4 if missing else 0
    first, last = STEPS_PER_DAY // 2, (days - 2) * STEPS_PER_DAY  # days 0.5 .. days-2
    stride = (last - first) // max(blocks, 1)
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


def test_a_day_of_history_is_refused_and_leaves_a_warm_up_notice(retrain_world, capsys):
    result = run(retrain_world, 1)

    assert result["status"] == "refused", result["reason"]
    reason = str(result["reason"])
    assert "spans 1.1 days" in reason
    assert "a first, daily-stage model needs 2 such days (MIN_DAILY_HISTORY_DAYS)" in reason
    assert result["stage"] is None
    # The history begins at MONDAY (2023-11-20): the first model can grow from 2023-11-22.
    assert result["warm_up"] == {
        "history_days": 1.13,
        "needs_days": 2.0,
        "first_model_after": "2023-11-22T00:00:00Z",
        "full_model_needs_days": 9,
    }
    assert emitted_metrics(capsys.readouterr().out)["Refused"] == 1
    with pytest.raises(ModelNotFoundError):
        retrain_world.registry().current()
    notice = retrain_world.registry().warm_up()
    assert notice is not None
    assert notice.first_model_after == MONDAY + 2 * 86400
    assert notice.until == MONDAY + 86400 + 3 * 3600 + 15 * 60 + 26 * 3600


def test_two_days_grow_a_daily_stage_model_judged_against_yesterday(retrain_world):
    result = run(retrain_world, 2)

    assert result["status"] == "promoted", result["reason"]
    assert result["stage"] == "daily"
    reason = str(result["reason"])
    assert reason.startswith("daily model: held-out MAE ")
    assert " vs same time yesterday " in reason
    assert "a full model (weekly pattern) can replace it once the history spans 9 days" in reason
    manifest = retrain_world.registry().current()
    assert manifest.stage == "daily"
    assert retrain_world.registry().warm_up() is None  # promoted: no longer warming up


def test_a_week_of_perfect_history_grows_only_a_daily_stage_model(retrain_world):
    """A week seen once is not a weekly pattern: the model it grows never splits on the
    weekly features (they are missing in every row it learned from)."""
    result = run(retrain_world, 7)

    assert result["status"] == "promoted", result["reason"]
    assert result["stage"] == "daily"
    assert "MIN_HISTORY_DAYS 9 days" not in str(result["reason"])  # the full stage's refusal is not news
    registry = retrain_world.registry()
    manifest = registry.current()
    model = load_verified(registry.model_bytes(manifest), manifest, ServingBounds(1000.0))
    weekly = [FEATURE_NAMES.index("weekly_delta"), FEATURE_NAMES.index("weekly_ratio")]
    rows = np.random.default_rng(1).normal(0.0, 1.0, size=(64, len(FEATURE_NAMES)))
    levels = np.full(64, np.log1p(5000.0))
    rows[:, weekly] = np.nan
    unseen = model.forecast_many(rows, levels)
    for value in (-3.0, 0.0, 3.0):
        rows[:, weekly] = value
        assert np.array_equal(model.forecast_many(rows, levels), unseen)
    # The daily pattern is used: yesterday's features move the forecast.
    rows[:, FEATURE_NAMES.index("daily_ratio")] += 2.0
    assert not np.array_equal(model.forecast_many(rows, levels), unseen)


def test_nine_days_with_a_fifth_missing_grow_the_full_model(retrain_world):
    result = run(retrain_world, 9, gap_share=0.20)

    assert result["status"] == "promoted", result["reason"]
    assert result["stage"] == "full"
    assert str(result["reason"]).startswith("full model: held-out MAE ")
    assert " vs seasonal-naive " in str(result["reason"])
    assert retrain_world.registry().current().stage == "full"


def test_nine_days_with_three_tenths_missing_are_still_the_daily_stage(retrain_world):
    result = run(retrain_world, 9, gap_share=0.30)

    assert result["stage"] == "daily", result["reason"]
    assert result["status"] == "promoted", result["reason"]
    assert retrain_world.registry().current().stage == "daily"


def test_a_daily_stage_model_never_replaces_a_full_one(retrain_world):
    nine_days = run(retrain_world, 9, gap_share=0.20)
    assert nine_days["stage"] == "full", nine_days["reason"]

    # The shop's model serves; retrain then finds only two days (its window was cut, or
    # metrics were lost): a daily-stage challenger is not even trained.
    result = run(retrain_world, 2)

    assert result["status"] == "kept", result["reason"]
    assert "a daily-stage model never replaces the full model that serves" in str(result["reason"])
    assert retrain_world.registry().current().stage == "full"


def test_the_gap_fixture_removes_what_it_says():
    history, _ = young_shop(9, gap_share=0.30)
    missing = int(np.sum(np.isnan(history[Metric.REQUESTS][: 9 * STEPS_PER_DAY])))
    assert missing == round(0.30 * 9 * STEPS_PER_DAY)
