"""The lead time a warm pool gives (issue 25): with WARM_POOL_LEAD_TIME_MINUTES, instances
taken from the pool serve sooner than a fresh launch, so retraining forecasts that much
ahead instead (a shorter horizon, a sharper forecast), and predict says in its decision
line which ready delay its model serves and warns when the model forecasts less far ahead
than new capacity needs. Every expected value is written out literally."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from saleor_scaling.model import ModelMetadata
from saleor_scaling.predict_service import PredictPorts, Status, run_predict
from saleor_scaling.settings import (
    ConfigurationError,
    PolicySettings,
    PredictSettings,
    RetrainSettings,
    ScalingMode,
)
from saleor_scaling.training import TrainingConfig, build_model
from tests.unit.fakes import FakeGroup, memory_ports, shop_settings
from tests.unit.test_forged_state_in_predict import MONDAY, SLOT, shop

BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}


# --- the settings ---------------------------------------------------------------------------


def test_retrain_forecasts_the_warm_pools_lead_time_ahead():
    fresh = RetrainSettings.from_env({**BASE_ENV, "LEAD_TIME_MINUTES": "10"})
    pooled = RetrainSettings.from_env(
        {**BASE_ENV, "LEAD_TIME_MINUTES": "10", "WARM_POOL_LEAD_TIME_MINUTES": "3"}
    )
    assert fresh.horizon_steps == 4
    assert pooled.horizon_steps == 3
    # 0, the template's value without a pool, is the fresh launch's lead time.
    unset = RetrainSettings.from_env(
        {**BASE_ENV, "LEAD_TIME_MINUTES": "20", "WARM_POOL_LEAD_TIME_MINUTES": "0"}
    )
    assert unset.horizon_steps == 6


def test_predict_reads_both_lead_times():
    settings = PredictSettings.from_env(
        {**BASE_ENV, "LEAD_TIME_MINUTES": "12", "WARM_POOL_LEAD_TIME_MINUTES": "2"}
    )
    assert (settings.lead_time_minutes, settings.warm_pool_lead_time_minutes) == (12, 2)
    assert settings.ready_minutes == 2
    defaults = PredictSettings.from_env(BASE_ENV)
    assert (defaults.lead_time_minutes, defaults.warm_pool_lead_time_minutes) == (10, 0)
    assert defaults.ready_minutes == 10


@pytest.mark.parametrize("kind", [PredictSettings, RetrainSettings])
@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LEAD_TIME_MINUTES": "10", "WARM_POOL_LEAD_TIME_MINUTES": "11"},
            "WARM_POOL_LEAD_TIME_MINUTES=11 is longer than LEAD_TIME_MINUTES=10: "
            "an instance from the warm pool is never slower than a fresh launch",
        ),
        (
            {"WARM_POOL_LEAD_TIME_MINUTES": "121"},
            "WARM_POOL_LEAD_TIME_MINUTES=121 must be a finite number in [0, 120]",
        ),
        (
            {"WARM_POOL_LEAD_TIME_MINUTES": "-1"},
            "WARM_POOL_LEAD_TIME_MINUTES=-1 must be a finite number in [0, 120]",
        ),
        ({"WARM_POOL_LEAD_TIME_MINUTES": "2.5"}, "WARM_POOL_LEAD_TIME_MINUTES='2.5' is not a whole number"),
        ({"LEAD_TIME_MINUTES": "0"}, "LEAD_TIME_MINUTES=0 must be a finite number in [1, 120]"),
    ],
)
def test_a_bad_warm_pool_lead_time_fails_with_its_name(kind, env, message):
    with pytest.raises(ConfigurationError) as caught:
        kind.from_env({**BASE_ENV, **env})
    assert str(caught.value) == message


def test_equal_lead_times_are_accepted():
    settings = RetrainSettings.from_env(
        {**BASE_ENV, "LEAD_TIME_MINUTES": "3", "WARM_POOL_LEAD_TIME_MINUTES": "3"}
    )
    assert settings.horizon_steps == 3


# --- predict with a model trained for the warm pool -------------------------------------------


@cache
def model_for(horizon_steps: int) -> tuple[bytes, ModelMetadata]:
    history, _, _ = shop()
    model = build_model(
        history.window(MONDAY, MONDAY + 8 * 86400),
        TrainingConfig(horizon_steps=horizon_steps, n_estimators=8),
        1000.0,
    )
    blob = model.ensemble.to_npz()
    return blob, model.metadata.with_artifact(blob, "models/model.npz", "v1")


def settings(
    mode: ScalingMode, lead_time_minutes: int, warm_pool_lead_time_minutes: int = 0
) -> PredictSettings:
    return shop_settings(
        PolicySettings(mode=mode, max_scale_in_step=1),
        lead_time_minutes=lead_time_minutes,
        warm_pool_lead_time_minutes=warm_pool_lead_time_minutes,
    )


def ports(horizon_steps: int, group: FakeGroup) -> PredictPorts:
    history, _, _ = shop()
    blob, metadata = model_for(horizon_steps)
    return memory_ports(history, group, blob, metadata)


def retrained_horizon(**env: str) -> int:
    """The horizon retrain trains for, from the settings the template gives it."""
    return RetrainSettings.from_env({**BASE_ENV, **env}).horizon_steps


@pytest.mark.parametrize(
    ("mode", "status"),
    [(ScalingMode.FORECAST_AND_SCALE, Status.SCALED), (ScalingMode.FORECAST_ONLY, Status.DECIDED)],
)
def test_with_a_warm_pool_predict_forecasts_5_minutes_sooner(mode, status):
    """Decision at 03:00, anchor bucket 02:50: a fresh launch's 10 minutes target 03:10, a
    warm pool's 3 minutes 03:05 (whole 5-minute steps)."""
    fresh_env = {"LEAD_TIME_MINUTES": "10"}
    pooled_env = {"LEAD_TIME_MINUTES": "10", "WARM_POOL_LEAD_TIME_MINUTES": "3"}
    records: dict[str, dict[str, Any]] = {}
    for name, env, warm_pool_minutes in (("fresh", fresh_env, 0), ("pooled", pooled_env, 3)):
        group = FakeGroup(desired=1, min_size=1, max_size=20)
        result = run_predict(
            SLOT, settings(mode, 10, warm_pool_minutes), ports(retrained_horizon(**env), group)
        )
        assert result.status is status
        assert result.horizon_note == ""
        records[name] = result.log_record()
        assert group.desired == (1 if mode is ScalingMode.FORECAST_ONLY else result.decision.target)  # type: ignore[union-attr]
    assert records["fresh"]["forecast"]["target_time"] == "2023-11-28T03:10:00Z"
    assert records["pooled"]["forecast"]["target_time"] == "2023-11-28T03:05:00Z"
    assert records["fresh"]["lead_time"] == {
        "ready_minutes": 10,
        "ready_from": "fresh launch",
        "model_horizon_minutes": 10,
    }
    assert records["pooled"]["lead_time"] == {
        "ready_minutes": 3,
        "ready_from": "warm pool",
        "model_horizon_minutes": 5,
    }
    assert "horizon_note" not in records["pooled"]


@pytest.mark.parametrize("mode", [ScalingMode.FORECAST_AND_SCALE, ScalingMode.FORECAST_ONLY])
def test_a_model_trained_for_a_pool_that_is_gone_is_used_with_a_warning(mode):
    """The pool was removed (WARM_POOL_LEAD_TIME_MINUTES 0) and the model in service still
    forecasts for its 3 minutes: predict still decides (a fallback would leave the shop to
    target tracking until the nightly retraining), and says the forecast is 5 minutes short."""
    group = FakeGroup(desired=1, min_size=1, max_size=20)
    result = run_predict(SLOT, settings(mode, 10), ports(3, group))
    assert result.status in {Status.SCALED, Status.DECIDED}
    assert result.horizon_note == (
        "warning: the model forecasts 5 minutes past the decision, new capacity needs 10 "
        "(fresh launch): scale-outs come up to 5 minutes late until the next retraining"
    )
    record = result.log_record()
    assert record["horizon_note"] == result.horizon_note
    assert record["lead_time"] == {
        "ready_minutes": 10,
        "ready_from": "fresh launch",
        "model_horizon_minutes": 5,
    }


def test_a_model_forecasting_further_than_the_pool_needs_is_fine():
    """A pool added after the last retraining: the model still forecasts for the fresh
    launch, which is early, never late."""
    group = FakeGroup(desired=1, min_size=1, max_size=20)
    result = run_predict(
        SLOT,
        settings(ScalingMode.FORECAST_AND_SCALE, 10, 3),
        ports(4, group),
    )
    assert result.horizon_note == ""
    assert result.log_record()["lead_time"] == {
        "ready_minutes": 3,
        "ready_from": "warm pool",
        "model_horizon_minutes": 10,
    }
