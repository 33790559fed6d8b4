"""Every numeric setting of both functions refuses non-finite and out-of-range values with
a message that names its variable (NaN slipped through hand-written `x <= 0` checks)."""

from __future__ import annotations

import dataclasses

import pytest

from saleor_scaling.settings import (
    ConfigurationError,
    PolicySettings,
    PredictSettings,
    RetrainSettings,
)

BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}


def numeric_variables(*settings_classes: type) -> dict[str, tuple[float, float]]:
    return {
        spec.metadata["env"]: spec.metadata["range"]
        for settings_class in settings_classes
        for spec in dataclasses.fields(settings_class)
        if "range" in spec.metadata
    }


PREDICT_VARIABLES = numeric_variables(PredictSettings, PolicySettings)
RETRAIN_VARIABLES = numeric_variables(RetrainSettings)


def test_every_numeric_variable_of_the_template_is_bounded():
    assert {
        "CAPACITY_PER_INSTANCE",
        "TARGET_CPU_PERCENT",
        "HEADROOM_QUANTILE",
        "MAX_SCALE_IN_STEP",
        "SCALE_IN_STABILIZATION_MINUTES",
        "EVENT_MAX_DELAY_SECONDS",
        "EVENT_MAX_EARLY_SECONDS",
        "FALLBACK_RELEASE_MINUTES",
        "DEMAND_CEILING_FACTOR",
    } <= set(PREDICT_VARIABLES)
    assert {
        "TRAINING_WINDOW_DAYS",
        "HOLDOUT_DAYS",
        "MIN_HISTORY_DAYS",
        "LEAD_TIME_MINUTES",
        "N_ESTIMATORS",
        "MAX_DEPTH",
        "PROMOTION_TOLERANCE",
        "MAX_MODEL_MEGABYTES",
        "CAPACITY_PER_INSTANCE",
        "TARGET_CPU_PERCENT",
    } <= set(RETRAIN_VARIABLES)


def bad_values(low: float, high: float) -> list[str]:
    return ["nan", "NaN", "inf", "-inf", repr(low - 1), repr(high * 10 + 1), "1e400"]


def cases(variables: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    return [(name, value) for name, (low, high) in variables.items() for value in bad_values(low, high)]


@pytest.mark.parametrize(("name", "value"), cases(PREDICT_VARIABLES))
def test_predict_refuses_non_finite_and_out_of_range(name, value):
    with pytest.raises(ConfigurationError, match=name):
        PredictSettings.from_env({**BASE_ENV, name: value})


@pytest.mark.parametrize(("name", "value"), cases(RETRAIN_VARIABLES))
def test_retrain_refuses_non_finite_and_out_of_range(name, value):
    with pytest.raises(ConfigurationError, match=name):
        RetrainSettings.from_env({**BASE_ENV, name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CAPACITY_PER_INSTANCE", "1e-300"),
        ("CAPACITY_PER_INSTANCE", "0"),
        ("TARGET_CPU_PERCENT", "0"),
        ("TARGET_CPU_PERCENT", "500"),
        ("MAX_MODEL_MEGABYTES", "0"),
        ("MAX_MODEL_MEGABYTES", "-1"),
        ("MAX_SCALE_IN_STEP", "1000000"),
    ],
)
def test_the_values_the_adversarial_review_found_are_refused(name, value):
    settings_class = RetrainSettings if name == "MAX_MODEL_MEGABYTES" else PredictSettings
    with pytest.raises(ConfigurationError, match=name):
        settings_class.from_env({**BASE_ENV, name: value})


def test_bounds_hold_however_the_object_is_built():
    with pytest.raises(ConfigurationError, match="MAX_SCALE_IN_STEP"):
        PolicySettings(max_scale_in_step=10**6)
    with pytest.raises(ConfigurationError, match="HEADROOM_QUANTILE"):
        PolicySettings(headroom_quantile=float("nan"))
    with pytest.raises(ConfigurationError, match="is not a number"):
        PolicySettings(max_scale_in_step=True)


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("off", False), ("", True), ("FALSE", False)])
def test_event_clock_check_switch(raw, expected):
    assert PredictSettings.from_env({**BASE_ENV, "EVENT_CLOCK_CHECK": raw}).event_clock_check is expected


def test_event_clock_check_refuses_anything_else():
    with pytest.raises(ConfigurationError, match="EVENT_CLOCK_CHECK"):
        PredictSettings.from_env({**BASE_ENV, "EVENT_CLOCK_CHECK": "maybe"})


def test_defaults_are_in_range():
    PredictSettings.from_env(BASE_ENV)
    RetrainSettings.from_env(BASE_ENV)
