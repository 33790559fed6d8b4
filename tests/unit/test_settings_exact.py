"""The message a bad setting fails the cold start with, word for word (it is all an
operator sees), and the small rules around reading a variable: blanks mean the default,
surrounding spaces are ignored, and the horizon a lead time gives."""

from __future__ import annotations

import math

import pytest

from saleor_scaling.settings import (
    ConfigurationError,
    ModelLocation,
    PolicySettings,
    PredictSettings,
    RetrainSettings,
    ScalingMode,
    bounded,
    check_key,
    horizon_steps_for,
)

BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}


def predict_error(**env: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        PredictSettings.from_env({**BASE_ENV, **env})
    return str(caught.value)


def retrain_error(**env: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        RetrainSettings.from_env({**BASE_ENV, **env})
    return str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HEADROOM_QUANTILE": "0.995"}, "HEADROOM_QUANTILE=0.995 must be a finite number in [0.5, 0.99]"),
        ({"HEADROOM_QUANTILE": "nan"}, "HEADROOM_QUANTILE=nan must be a finite number in [0.5, 0.99]"),
        ({"MAX_SCALE_IN_STEP": "101"}, "MAX_SCALE_IN_STEP=101 must be a finite number in [0, 100]"),
        ({"CAPACITY_PER_INSTANCE": "0.5"}, "CAPACITY_PER_INSTANCE=0.5 must be a finite number in [1, 1e+06]"),
        ({"CAPACITY_PER_INSTANCE": "inf"}, "CAPACITY_PER_INSTANCE=inf must be a finite number in [1, 1e+06]"),
        ({"TARGET_CPU_PERCENT": "abc"}, "TARGET_CPU_PERCENT='abc' is not a number"),
        ({"EVENT_MAX_EARLY_SECONDS": "1.5"}, "EVENT_MAX_EARLY_SECONDS='1.5' is not a whole number"),
        ({"EVENT_CLOCK_CHECK": "MAYBE"}, "EVENT_CLOCK_CHECK='maybe' must be on or off"),
        ({"SCALING_MODE": "scale"}, "SCALING_MODE 'scale' is not one of forecast-only, forecast-and-scale"),
        ({"SHOP_TIMEZONE": "Mars/Base"}, "SHOP_TIMEZONE 'Mars/Base' is not an IANA time zone"),
        ({"SHOP_TIMEZONE": "../etc"}, "SHOP_TIMEZONE '../etc' is not an IANA time zone"),
        ({"MODEL_BUCKET": "  "}, "environment variable MODEL_BUCKET is required"),
        ({"AUTO_SCALING_GROUP_NAME": ""}, "environment variable AUTO_SCALING_GROUP_NAME is required"),
        ({"LOAD_BALANCER_FULL_NAME": " "}, "environment variable LOAD_BALANCER_FULL_NAME is required"),
        (
            {"STATE_KEY": "models/x.json"},
            "STATE_KEY='models/x.json' must be an object key under state/: relative, without '.', '..' or "
            "empty segments",
        ),
        (
            {"STATE_KEY": "state"},
            "STATE_KEY='state' must be an object key under state/: relative, without '.', '..' or "
            "empty segments",
        ),
        (
            {"HISTORY_PREFIX": "state/x"},
            "HISTORY_PREFIX='state/x' must be a key prefix under history/: relative, without '.', '..' or "
            "empty segments",
        ),
        (
            {"AUTO_SCALING_GROUP_NAME": ".."},
            "HISTORY_PREFIX (by default history/AUTO_SCALING_GROUP_NAME)='history/..' must be a key prefix "
            "under history/: relative, without '.', '..' or empty segments",
        ),
        (
            {"HISTORY_PREFIX": "history/a", "AUTO_SCALING_GROUP_NAME": "."},
            "STATE_KEY (by default state/AUTO_SCALING_GROUP_NAME/predict-state.json)="
            "'state/./predict-state.json' must be an object key under state/: relative, "
            "without '.', '..' or empty segments",
        ),
        (
            {"MODEL_MANIFEST_KEY": "state/m.json"},
            "MODEL_MANIFEST_KEY='state/m.json' must be an object key under models/: relative, "
            "without '.', '..' or empty segments",
        ),
        (
            {"MODEL_KEY": "models/../state/x"},
            "MODEL_KEY='models/../state/x' must be an object key under models/: relative, without '.', '..' "
            "or empty segments",
        ),
        (
            {"MODEL_KEY": "models/a", "MODEL_MANIFEST_KEY": "models/a"},
            "MODEL_KEY and MODEL_MANIFEST_KEY are both 'models/a': each model would overwrite the manifest",
        ),
        ({"STATE_KEY": "state/" + "k" * 1019}, "STATE_KEY is 1025 bytes long, over the 1024 S3 allows"),
        (
            {"HISTORY_PREFIX": "history/" + "h" * 998},
            "HISTORY_PREFIX is 1006 bytes long, over the 1005 S3 allows",
        ),
        ({"STATE_KEY": "state/" + "é" * 510}, "STATE_KEY is 1026 bytes long, over the 1024 S3 allows"),
    ],
)
def test_predict_messages(env, message):
    assert predict_error(**env) == message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOLDOUT_DAYS": "9"}, "need HOLDOUT_DAYS < MIN_HISTORY_DAYS <= TRAINING_WINDOW_DAYS"),
        ({"MIN_HISTORY_DAYS": "29"}, "need HOLDOUT_DAYS < MIN_HISTORY_DAYS <= TRAINING_WINDOW_DAYS"),
        ({"MAX_DEPTH": "x"}, "MAX_DEPTH='x' is not a whole number"),
        ({"PROMOTION_TOLERANCE": "0.51"}, "PROMOTION_TOLERANCE=0.51 must be a finite number in [0, 0.5]"),
        ({"MAX_MODEL_MEGABYTES": "0.05"}, "MAX_MODEL_MEGABYTES=0.05 must be a finite number in [0.1, 50]"),
        ({"LEAD_TIME_MINUTES": "121"}, "LEAD_TIME_MINUTES=121 must be a finite number in [1, 120]"),
        (
            {"HISTORY_PREFIX": "models"},
            "HISTORY_PREFIX='models' must be a key prefix under history/: relative, "
            "without '.', '..' or empty segments",
        ),
    ],
)
def test_retrain_messages(env, message):
    assert retrain_error(**env) == message


def test_a_non_number_built_in_code_is_named():
    with pytest.raises(ConfigurationError) as caught:
        PolicySettings(max_scale_in_step="2")  # type: ignore[arg-type]
    assert str(caught.value) == "MAX_SCALE_IN_STEP='2' is not a number"
    with pytest.raises(ConfigurationError) as caught:
        PolicySettings(target_cpu_percent=True)
    assert str(caught.value) == "TARGET_CPU_PERCENT=True is not a number"


def test_every_bounded_field_is_checked_not_only_the_first_bad_one():
    """The last bounded field of each class is checked too (no early stop after a good one)."""
    with pytest.raises(ConfigurationError, match=r"^DEMAND_CEILING_FACTOR=1.4 "):
        PredictSettings.from_env({**BASE_ENV, "DEMAND_CEILING_FACTOR": "1.4"})
    with pytest.raises(ConfigurationError, match=r"^MAX_MODEL_MEGABYTES=51.0 "):
        RetrainSettings.from_env({**BASE_ENV, "MAX_MODEL_MEGABYTES": "51"})


def test_blanks_are_the_default_and_spaces_are_ignored():
    blank = PredictSettings.from_env(
        {
            **BASE_ENV,
            "HEADROOM_QUANTILE": "  ",
            "MAX_SCALE_IN_STEP": "",
            "EVENT_CLOCK_CHECK": " ",
            "SCALING_MODE": " forecast-and-scale ",
            "AUTO_SCALING_GROUP_NAME": "  shop  ",
            "EVENT_MAX_EARLY_SECONDS": " 61 ",
            "DEMAND_CEILING_FACTOR": " 2.5 ",
        }
    )
    assert blank.policy.headroom_quantile == 0.6
    assert blank.policy.max_scale_in_step == 1
    assert blank.event_clock_check is True
    assert blank.policy.mode is ScalingMode.FORECAST_AND_SCALE
    assert blank.auto_scaling_group_name == "shop"
    assert blank.event_max_early_seconds == 61
    assert blank.demand_ceiling_factor == 2.5
    assert blank.state_key == "state/shop/predict-state.json"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("on", True), (" TRUE ", True), ("1", True), ("Off", False), ("false", False), ("0", False)],
)
def test_the_switch_words(raw, expected):
    settings = PredictSettings.from_env({**BASE_ENV, "EVENT_CLOCK_CHECK": raw})
    assert settings.event_clock_check is expected


@pytest.mark.parametrize(("lead", "steps"), [(0, 3), (1, 3), (5, 3), (6, 4), (10, 4), (11, 5), (120, 26)])
def test_horizon_steps_for_a_lead_time(lead, steps):
    assert horizon_steps_for(lead) == steps


def test_retrain_horizon_reads_the_lead_time():
    assert RetrainSettings.from_env({**BASE_ENV, "LEAD_TIME_MINUTES": "15"}).horizon_steps == 5


def test_keys_at_their_limits_are_accepted():
    check_key("STATE_KEY", "state/" + "k" * 1018, "state")  # 1024 bytes
    check_key("HISTORY_PREFIX", "history/" + "h" * 997, "history", prefix=True)  # 1005 bytes
    check_key("HISTORY_PREFIX", "history/shop/", "history", prefix=True)
    check_key("HISTORY_PREFIX", "history", "history", prefix=True)
    check_key("STATE_KEY", "state/a", "state")
    with pytest.raises(ConfigurationError, match=r"^HISTORY_PREFIX='history//' must be a key prefix"):
        check_key("HISTORY_PREFIX", "history//", "history", prefix=True)
    with pytest.raises(ConfigurationError, match=r"^STATE_KEY='state/a/' must be an object key"):
        check_key("STATE_KEY", "state/a/", "state")


def test_a_location_built_in_code_is_checked():
    assert ModelLocation("b") == ModelLocation("b", "models/manifest.json", "models/model.npz")
    with pytest.raises(ConfigurationError) as caught:
        ModelLocation("b", model_key="history/m.npz")
    assert str(caught.value) == (
        "MODEL_KEY='history/m.npz' must be an object key under models/: relative, without '.', '..' "
        "or empty segments"
    )


def test_holdout_and_window_bounds_at_their_values():
    edge = RetrainSettings.from_env(
        {**BASE_ENV, "HOLDOUT_DAYS": "8", "MIN_HISTORY_DAYS": "9", "TRAINING_WINDOW_DAYS": "9"}
    )
    assert (edge.holdout_days, edge.min_history_days, edge.training_window_days) == (8, 9, 9)
    assert math.isclose(edge.promotion_tolerance, 0.02)


def test_bounded_declares_the_default_the_variable_and_the_range():
    """`bounded` runs when the classes are defined; called here, its field is checked as built."""
    declared = bounded(0.5, 0.1, 0.9, "SOME_VARIABLE")
    assert declared.default == 0.5
    assert dict(declared.metadata) == {"env": "SOME_VARIABLE", "range": (0.1, 0.9)}


def test_from_env_without_a_mapping_reads_the_process_environment(monkeypatch):
    for name, value in {**BASE_ENV, "MAX_DEPTH": "7", "EVENT_MAX_DELAY_SECONDS": "100"}.items():
        monkeypatch.setenv(name, value)
    assert RetrainSettings.from_env().max_depth == 7
    assert PredictSettings.from_env().event_max_delay_seconds == 100


def test_the_policy_gets_the_shops_cpu_target():
    settings = PredictSettings.from_env({**BASE_ENV, "TARGET_CPU_PERCENT": "80"})
    assert settings.policy.target_cpu_percent == 80.0
    assert settings.target_cpu_percent == 80.0


def test_the_notification_topic_is_read_and_empty_by_default():
    arn = "arn:aws:sns:eu-west-1:123456789012:scaling"
    assert PredictSettings.from_env({**BASE_ENV, "NOTIFICATION_TOPIC_ARN": arn}).topic_arn == arn
    assert RetrainSettings.from_env(BASE_ENV).topic_arn == ""


def test_a_required_variable_that_is_absent_is_named():
    with pytest.raises(ConfigurationError) as caught:
        PredictSettings.from_env({"AUTO_SCALING_GROUP_NAME": "shop", "LOAD_BALANCER_FULL_NAME": "app/shop/1"})
    assert str(caught.value) == "environment variable MODEL_BUCKET is required"
