"""Retraining cannot be poisoned by one datapoint, and promotion means what the README says.

The nightly job runs here on in-memory ports (`saleor_scaling.local.memory`), which refuse
what CloudWatch refuses; each test seeds a shop and reads what retrain decided. Issue 21:
one RequestCount datapoint of 6e6 in a 5-minute bucket (100x the real peak) used to become
the manifest's demand ceiling basis (1.2 M/min), so the same glitch at predict's anchor then
scaled the group to MaxSize; one of 1e12 made every challenger lose for 28 nights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from saleor_scaling.local.memory import MemoryArchive, MemoryMetrics, MemoryNotifier, MemoryRegistry
from saleor_scaling.predict_service import Status, run_predict
from saleor_scaling.retrain_service import RetrainPorts, RetrainResult, RetrainStatus, run_retrain
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation, PolicySettings, RetrainSettings
from tests.conftest import synthetic_history
from tests.unit.fakes import FakeGroup, memory_ports, shop_settings

MONDAY = 1_700_438_400  # 2023-11-20 00:00 UTC
DAY = 86400
DAYS = 24
RETRAIN_AT = MONDAY + DAYS * DAY + 3 * 3600 + 15 * 60  # 03:15 UTC, the nightly slot
PEAK = 10_000.0  # requests per minute at the evening peak: 10 instances of 1,000


class Shop:
    """One shop's CloudWatch, backup and model registry across several retrain nights."""

    def __init__(self, history: MetricHistory) -> None:
        self.history = history
        self.archive = MemoryArchive()
        self.models = MemoryRegistry()

    def retrain(self, now: int = RETRAIN_AT, **overrides: Any) -> RetrainResult:
        values: dict[str, Any] = {
            "auto_scaling_group_name": "saleor-api",
            "load_balancer_full_name": "app/saleor/0123456789abcdef",
            "model": ModelLocation(bucket="models"),
            "n_estimators": 20,
        }
        values.update(overrides)
        ports = RetrainPorts(MemoryMetrics(self.history), self.archive, self.models, MemoryNotifier())
        return run_retrain(now, RetrainSettings(**values), ports)


def shop_with(changes: dict[int, float], days: int = DAYS + 1, seed: int = 3) -> MetricHistory:
    """The synthetic shop with RequestCount (the 5-minute Sum) set at some steps."""
    history = synthetic_history(MONDAY, days, peak_per_minute=PEAK, seed=seed)
    values = {metric: array.copy() for metric, array in history.values.items()}
    for index, request_count in changes.items():
        values[Metric.REQUESTS][index] = request_count
    return MetricHistory(start=MONDAY, values=values)


GLITCH_STEP = 10 * 288 + 20 * 12  # day 10 at 20:00 UTC: inside the window, not held out
REAL_PEAK_LOW, REAL_PEAK_HIGH = 9_000.0, 12_000.0
"""The synthetic shop's busiest 5-minute buckets lie in this range (10,000 a minute times
its 5 % lognormal noise): where the ceiling basis must stay."""


@pytest.mark.parametrize("glitch", [6e6, 1e12])
def test_one_glitch_datapoint_neither_moves_the_ceiling_basis_nor_blocks_promotion(glitch):
    shop = Shop(shop_with({GLITCH_STEP: glitch}))
    result = shop.retrain()

    assert result.status is RetrainStatus.PROMOTED, result.reason
    basis = shop.models.current().training_demand_max_per_minute
    assert REAL_PEAK_LOW <= basis <= REAL_PEAK_HIGH  # before: 1.2e6 (6e6), never promoted (1e12)
    assert result.history is not None
    assert result.history.glitches_dropped == 1
    assert result.log_record()["history"]["glitches_dropped"] == 1


def test_the_clean_shop_has_the_same_basis_and_drops_nothing():
    shop = Shop(shop_with({}))
    result = shop.retrain()

    assert result.status is RetrainStatus.PROMOTED, result.reason
    assert REAL_PEAK_LOW <= shop.models.current().training_demand_max_per_minute <= REAL_PEAK_HIGH
    assert result.history is not None
    assert result.history.glitches_dropped == 0


def test_the_probe_a_glitch_in_training_and_at_the_anchor_does_not_scale_to_max_size():
    """The adversarial probe end to end: retrain on a window holding the glitch, then the
    same glitch at predict's anchor. Before: desired 2 -> 20 (MaxSize), MinSize 1 -> 20."""
    predict_at = RETRAIN_AT + 9 * 3600 + 17  # 12:15 UTC the day after the retrain
    anchor = (predict_at - predict_at % 300 - 600 - MONDAY) // 300
    history = shop_with({GLITCH_STEP: 6e6, anchor: 6e6}, days=DAYS + 2)
    shop = Shop(history)
    assert shop.retrain().status is RetrainStatus.PROMOTED
    metadata = shop.models.current()
    blob = shop.models.model_bytes(metadata)

    group = FakeGroup(desired=2, min_size=1, max_size=20)
    ports = memory_ports(history, group, blob, metadata)
    result = run_predict(predict_at, shop_settings(PolicySettings()), ports, received_at=predict_at + 2.0)

    assert result.status is Status.FALLBACK, result.reason
    assert "sanity ceiling" in result.reason
    assert (group.desired, group.min_size) == (2, 1)


def test_a_real_tenfold_day_is_learned_not_dropped():
    """A viral day: yesterday from 08:00 to 20:00 the shop served 10x its usual load. That
    is load, not a glitch: nothing is dropped, the challenger (which sees the level rise)
    beats last week's forecast, and the promoted basis is the new level, so predict's
    ceiling (10x the basis) stays far above it."""
    yesterday = (DAYS - 1) * 288
    base = synthetic_history(MONDAY, DAYS + 1, peak_per_minute=PEAK, seed=3)[Metric.REQUESTS]
    viral = {index: 10 * float(base[index]) for index in range(yesterday + 8 * 12, yesterday + 20 * 12)}
    shop = Shop(shop_with(viral))
    result = shop.retrain()

    assert result.history is not None
    assert result.history.glitches_dropped == 0
    assert result.status is RetrainStatus.PROMOTED, result.reason
    assert 90_000.0 <= shop.models.current().training_demand_max_per_minute <= 120_000.0


def constant_shop(per_minute: float) -> MetricHistory:
    steps = (DAYS + 1) * 288
    in_service = max(1.0, np.ceil(per_minute / 1000.0))
    return MetricHistory(
        start=MONDAY,
        values={
            Metric.REQUESTS: np.full(steps, per_minute * 5),
            Metric.RESPONSE_TIME: np.full(steps, 0.1),
            Metric.ERRORS_5XX: np.zeros(steps),
            Metric.CPU: np.full(steps, 35.0),
            Metric.DESIRED: np.full(steps, in_service),
            Metric.IN_SERVICE: np.full(steps, in_service),
            Metric.BUSIEST_MINUTE: np.full(steps, per_minute),
        },
    )


@pytest.mark.parametrize("per_minute", [0.0, 3000.0])
def test_a_challenger_that_only_ties_seasonal_naive_is_not_promoted(per_minute):
    """An idle and a constant shop: last week's load is a perfect forecast, so no model can
    beat it. Before: promoted with "held-out MAE 0.0 vs seasonal-naive 0.0"."""
    shop = Shop(constant_shop(per_minute))
    result = shop.retrain()

    assert result.status is RetrainStatus.KEPT, result.reason
    assert "does not beat seasonal-naive" in result.reason
    assert shop.models.versions == []


def test_a_second_retrain_the_same_night_skips_the_champion_comparison_and_says_so():
    """The champion promoted at 03:15 trained on every held-out step of a run at 03:45:
    judged there it would look better than it is. The comparison is skipped, the report
    says so, and the challenger must still beat seasonal-naive. Before: the champion was
    judged on its own training days and kept ("the champion saw part of this tail")."""
    shop = Shop(shop_with({}))
    first = shop.retrain(n_estimators=60)
    assert first.status is RetrainStatus.PROMOTED, first.reason
    champion_version = shop.models.current().model_version_id

    second = shop.retrain(RETRAIN_AT + 30 * 60, n_estimators=10, max_depth=4)

    assert second.champion is not None
    assert second.champion["comparable"] is False
    assert "comparison with the champion skipped" in second.reason
    assert "champion" not in second.scores
    assert second.status is RetrainStatus.PROMOTED, second.reason
    assert shop.models.current().model_version_id != champion_version
    assert second.scores["challenger"]["mae"] < second.scores["seasonal_naive"]["mae"]  # type: ignore[operator]


def test_a_retrain_a_day_later_judges_the_champion_on_the_day_it_never_saw():
    """The next night the champion is judged on the steps it never saw, more than the 72
    needed: it trained on the window ending at 03:05 of day 24 (its last row anchored at
    02:45, that row's target at 03:05), so the held-out rows anchored from 03:10 to 23:35
    (the trace ends at midnight; a row needs its target 20 minutes on): 246 steps."""
    shop = Shop(shop_with({}))
    assert shop.retrain(n_estimators=60).status is RetrainStatus.PROMOTED

    second = shop.retrain(RETRAIN_AT + DAY, n_estimators=10, max_depth=4)

    assert second.champion is not None
    assert second.champion.get("comparable", True) is True
    assert "skipped" not in second.reason
    champion_rows = second.scores["champion"]["rows"]
    assert champion_rows is not None
    assert champion_rows == 246
