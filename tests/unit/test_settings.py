"""Every setting of both functions, tested at its exact bounds with the values written
here, not read from the code under test: a bound loosened or tightened by one (for a
float: by one representable step) fails a test. Non-finite values are refused with a
message that names the variable (NaN slipped through hand-written `x <= 0` checks), and
the bucket keys stay inside their own area of the bucket."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from saleor_scaling.model import MAX_MODEL_BYTES
from saleor_scaling.settings import (
    ConfigurationError,
    ModelLocation,
    PolicySettings,
    PredictSettings,
    RetrainSettings,
    ScalingMode,
    ShortfallGoal,
)
from tests.conftest import REPO_ROOT, load_handler
from tests.infra.cfn import load

BASE_ENV = {
    "AUTO_SCALING_GROUP_NAME": "shop",
    "LOAD_BALANCER_FULL_NAME": "app/shop/123",
    "MODEL_BUCKET": "bucket",
}

# name: (lowest accepted, highest accepted, just below, just above), and the other
# variables an edge needs to satisfy HOLDOUT_DAYS < MIN_HISTORY_DAYS <= TRAINING_WINDOW_DAYS.
PREDICT_BOUNDS = {
    "CAPACITY_PER_INSTANCE": ("1", "1000000", "0.9999999999999999", "1000000.0000000001"),
    "TARGET_CPU_PERCENT": ("10", "95", "9.999999999999998", "95.00000000000001"),
    "HEADROOM_QUANTILE": ("0.5", "0.99", "0.49999999999999994", "0.9900000000000001"),
    "MAX_SCALE_IN_STEP": ("0", "100", "-1", "101"),
    "SCALE_IN_STABILIZATION_MINUTES": ("0", "1440", "-1", "1441"),
    "EVENT_MAX_DELAY_SECONDS": ("0", "3600", "-1", "3601"),
    "EVENT_MAX_EARLY_SECONDS": ("0", "3600", "-1", "3601"),
    "FALLBACK_RELEASE_MINUTES": ("5", "1440", "4", "1441"),
    "DEMAND_CEILING_FACTOR": ("1.5", "1000", "1.4999999999999998", "1000.0000000000001"),
    "LEAD_TIME_MINUTES": ("1", "120", "0", "121"),
    "WARM_POOL_LEAD_TIME_MINUTES": ("0", "120", "-1", "121"),
    "WARM_POOL_MIN_SIZE": ("0", "100", "-1", "101"),
    "WARM_POOL_MAX_SIZE": ("0", "100", "-1", "101"),
    "TARGET_SHORTFALL_PERCENT": ("0", "20", "-5e-324", "20.000000000000004"),
    "TUNED_HEADROOM_QUANTILE_FLOOR": ("0.5", "0.99", "0.49999999999999994", "0.9900000000000001"),
}
RETRAIN_BOUNDS = {
    "CAPACITY_PER_INSTANCE": PREDICT_BOUNDS["CAPACITY_PER_INSTANCE"],
    "TARGET_CPU_PERCENT": PREDICT_BOUNDS["TARGET_CPU_PERCENT"],
    "TRAINING_WINDOW_DAYS": ("2", "365", "1", "366"),
    "HOLDOUT_DAYS": ("1", "14", "0", "15"),
    "MIN_HISTORY_DAYS": ("2", "365", "1", "366"),
    "LEAD_TIME_MINUTES": ("1", "120", "0", "121"),
    "WARM_POOL_LEAD_TIME_MINUTES": ("0", "120", "-1", "121"),
    "N_ESTIMATORS": ("10", "500", "9", "501"),
    "MAX_DEPTH": ("4", "20", "3", "21"),
    "PROMOTION_TOLERANCE": ("0", "0.5", "-5e-324", "0.5000000000000001"),
    "MAX_MODEL_MEGABYTES": ("0.1", "50", "0.09999999999999999", "50.00000000000001"),
    # What the shortfall goal's nightly replay runs (`simulation.replay`).
    "TARGET_SHORTFALL_PERCENT": PREDICT_BOUNDS["TARGET_SHORTFALL_PERCENT"],
    "TUNED_HEADROOM_QUANTILE_FLOOR": PREDICT_BOUNDS["TUNED_HEADROOM_QUANTILE_FLOOR"],
    "HEADROOM_QUANTILE": PREDICT_BOUNDS["HEADROOM_QUANTILE"],
    "MAX_SCALE_IN_STEP": PREDICT_BOUNDS["MAX_SCALE_IN_STEP"],
    "SCALE_IN_STABILIZATION_MINUTES": PREDICT_BOUNDS["SCALE_IN_STABILIZATION_MINUTES"],
    "GROUP_MIN_SIZE": ("1", "100", "0", "101"),
    "GROUP_MAX_SIZE": ("2", "100", "1", "101"),
}
RETRAIN_COMPANIONS = {
    ("GROUP_MIN_SIZE", "100"): {"GROUP_MAX_SIZE": "100"},
    ("TRAINING_WINDOW_DAYS", "2"): {"MIN_HISTORY_DAYS": "2", "HOLDOUT_DAYS": "1"},
    ("HOLDOUT_DAYS", "14"): {"MIN_HISTORY_DAYS": "15"},
    ("HOLDOUT_DAYS", "15"): {"MIN_HISTORY_DAYS": "16"},
    ("MIN_HISTORY_DAYS", "2"): {"HOLDOUT_DAYS": "1"},
    ("MIN_HISTORY_DAYS", "365"): {"TRAINING_WINDOW_DAYS": "365"},
    ("WARM_POOL_LEAD_TIME_MINUTES", "120"): {"LEAD_TIME_MINUTES": "120"},
}
PREDICT_COMPANIONS = {("WARM_POOL_LEAD_TIME_MINUTES", "120"): {"LEAD_TIME_MINUTES": "120"}}
"""A warm pool's lead time is at most the fresh launch's (`settings.ready_minutes`)."""


def bounded_variables(*settings_classes: type) -> set[str]:
    return {
        spec.metadata["env"]
        for settings_class in settings_classes
        for spec in dataclasses.fields(settings_class)
        if "range" in spec.metadata
    }


def test_every_bounded_variable_has_its_bounds_written_here():
    assert bounded_variables(PredictSettings, PolicySettings, ShortfallGoal) == set(PREDICT_BOUNDS)
    assert bounded_variables(RetrainSettings, PolicySettings, ShortfallGoal) == set(RETRAIN_BOUNDS)


def out_of_range(name: str) -> str:
    """The range error itself, not the cross-check of the retrain days that also names it."""
    return rf"^{name}=\S+ must be a finite number in \["


def edges(bounds: dict[str, tuple[str, str, str, str]]) -> list[tuple[str, str, bool]]:
    return [
        case
        for name, (low, high, below, above) in bounds.items()
        for case in ((name, low, True), (name, high, True), (name, below, False), (name, above, False))
    ]


@pytest.mark.parametrize(("name", "value", "accepted"), edges(PREDICT_BOUNDS))
def test_predict_bounds_are_exact(name, value, accepted):
    env = {**BASE_ENV, **PREDICT_COMPANIONS.get((name, value), {}), name: value}
    if accepted:
        PredictSettings.from_env(env)
    else:
        with pytest.raises(ConfigurationError, match=out_of_range(name)):
            PredictSettings.from_env(env)


@pytest.mark.parametrize(("name", "value", "accepted"), edges(RETRAIN_BOUNDS))
def test_retrain_bounds_are_exact(name, value, accepted):
    env = {**BASE_ENV, **RETRAIN_COMPANIONS.get((name, value), {}), name: value}
    if accepted:
        RetrainSettings.from_env(env)
    else:
        with pytest.raises(ConfigurationError, match=out_of_range(name)):
            RetrainSettings.from_env(env)


@pytest.mark.parametrize(
    ("env", "accepted"),
    [
        ({"HOLDOUT_DAYS": "8", "MIN_HISTORY_DAYS": "9", "TRAINING_WINDOW_DAYS": "9"}, True),
        ({"HOLDOUT_DAYS": "9", "MIN_HISTORY_DAYS": "9", "TRAINING_WINDOW_DAYS": "9"}, False),
        ({"HOLDOUT_DAYS": "2", "MIN_HISTORY_DAYS": "10", "TRAINING_WINDOW_DAYS": "9"}, False),
    ],
)
def test_holdout_shorter_than_min_history_within_the_window(env, accepted):
    if accepted:
        RetrainSettings.from_env({**BASE_ENV, **env})
    else:
        with pytest.raises(ConfigurationError, match="need HOLDOUT_DAYS < MIN_HISTORY_DAYS <= TRAINING"):
            RetrainSettings.from_env({**BASE_ENV, **env})


NON_FINITE = ["nan", "NaN", "inf", "-inf", "1e400"]


@pytest.mark.parametrize("name", sorted(PREDICT_BOUNDS))
@pytest.mark.parametrize("value", NON_FINITE)
def test_predict_refuses_non_finite(name, value):
    with pytest.raises(ConfigurationError, match=name):
        PredictSettings.from_env({**BASE_ENV, name: value})


@pytest.mark.parametrize("name", sorted(RETRAIN_BOUNDS))
@pytest.mark.parametrize("value", NON_FINITE)
def test_retrain_refuses_non_finite(name, value):
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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"AUTO_SCALING_GROUP_NAME": ""}, "AUTO_SCALING_GROUP_NAME is required"),
        ({"AUTO_SCALING_GROUP_NAME": "  "}, "AUTO_SCALING_GROUP_NAME is required"),
        ({"LOAD_BALANCER_FULL_NAME": ""}, "LOAD_BALANCER_FULL_NAME is required"),
        ({"MODEL_BUCKET": ""}, "MODEL_BUCKET is required"),
        ({"SCALING_MODE": "yolo"}, "SCALING_MODE"),
        ({"HEADROOM_QUANTILE": "high"}, "HEADROOM_QUANTILE='high' is not a number"),
        ({"MAX_SCALE_IN_STEP": "1.5"}, "MAX_SCALE_IN_STEP='1.5' is not a whole number"),
        ({"SHOP_TIMEZONE": "Mars/Olympus"}, "IANA"),
    ],
)
def test_bad_settings_fail_with_the_variable_named(override, message):
    with pytest.raises(ConfigurationError, match=message):
        PredictSettings.from_env({**BASE_ENV, **override})


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("target_cpu_percent", 10.0, True),
        ("target_cpu_percent", 95.0, True),
        ("target_cpu_percent", 9.999999999999998, False),
        ("target_cpu_percent", 95.00000000000001, False),
        ("max_scale_in_step", 0, True),
        ("max_scale_in_step", 100, True),
        ("max_scale_in_step", -1, False),
        ("max_scale_in_step", 101, False),
    ],
)
def test_policy_bounds_are_exact_however_it_is_built(field, value, accepted):
    """The policy's own copy of TARGET_CPU_PERCENT, which from_env fills from the shop's."""
    if accepted:
        PolicySettings(**{field: value})
    else:
        with pytest.raises(ConfigurationError, match=out_of_range(field.upper())):
            PolicySettings(**{field: value})


def test_bounds_hold_however_the_object_is_built():
    PolicySettings(max_scale_in_step=100)
    with pytest.raises(ConfigurationError, match="MAX_SCALE_IN_STEP"):
        PolicySettings(max_scale_in_step=101)
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


def test_defaults():
    predict = PredictSettings.from_env(BASE_ENV)
    assert predict.policy == PolicySettings(
        mode=ScalingMode.FORECAST_ONLY,
        headroom_quantile=0.6,
        max_scale_in_step=1,
        scale_in_stabilization_minutes=30,
        target_cpu_percent=70.0,
    )
    assert (predict.event_clock_check, predict.event_max_delay_seconds, predict.event_max_early_seconds) == (
        True,
        240,
        60,
    )
    assert (predict.fallback_release_minutes, predict.demand_ceiling_factor) == (30, 10.0)
    assert (predict.capacity_per_instance, predict.timezone) == (1000.0, "UTC")
    assert predict.model == ModelLocation("bucket", "models/manifest.json", "models/model.npz")
    assert predict.state_key == "state/shop/predict-state.json"
    assert predict.history_prefix == "history/shop"
    retrain = RetrainSettings.from_env(BASE_ENV)
    assert (retrain.training_window_days, retrain.holdout_days, retrain.min_history_days) == (28, 2, 9)
    assert (retrain.lead_time_minutes, retrain.n_estimators, retrain.max_depth) == (10, 60, 12)
    assert (retrain.promotion_tolerance, retrain.max_model_megabytes) == (0.02, 10.0)
    assert retrain.history_prefix == "history/shop"


# --- the template's parameters allow exactly what the functions accept --------------------

TEMPLATE = load(REPO_ROOT / "template.yaml")
# Every Number parameter that reaches a function's environment: (MinValue, MaxValue, just
# below, just above). The functions must accept the first two and refuse the others, so a
# deploy can never pass CloudFormation's check and then fail the cold start (or the
# reverse: a value the code handles that the template refuses for no reason).
TEMPLATE_RANGES = {
    "HeadroomQuantile": ("0.5", "0.99", "0.49999999999999994", "0.9900000000000001"),
    "MaxScaleInStep": ("0", "100", "-1", "101"),
    "ScaleInStabilizationMinutes": ("0", "1440", "-1", "1441"),
    "FallbackReleaseMinutes": ("5", "1440", "4", "1441"),
    "TargetCpuPercent": ("10", "95", "9.999999999999998", "95.00000000000001"),
    "CapacityPerInstance": ("1", "1000000", "0.9999999999999999", "1000000.0000000001"),
    # At least MIN_HISTORY_DAYS, which the template sets to 9 beside it.
    "TrainingWindowDays": ("9", "365", "8", "366"),
    "LeadTimeMinutes": ("1", "120", "0", "121"),
    # At most LeadTimeMinutes, which the case below sets to its own MaxValue.
    "WarmPoolLeadTimeMinutes": ("0", "120", "-1", "121"),
    "WarmPoolMinSize": ("0", "100", "-1", "101"),
    "WarmPoolMaxSizeByPredict": ("0", "100", "-1", "101"),
    "TargetShortfallPercent": ("0", "20", "-5e-324", "20.000000000000004"),
    "TunedHeadroomQuantileFloor": ("0.5", "0.99", "0.49999999999999994", "0.9900000000000001"),
    # GroupMinSize at its MaxValue beside GroupMaxSize at its own (the case below sets it).
    "GroupMinSize": ("1", "100", "0", "101"),
    "GroupMaxSize": ("2", "100", "1", "101"),
}
WATCHDOG_READS = {"FALLBACK_RELEASE_MINUTES"}
"""The watchdog parses this one variable itself (no settings object, no layers)."""


def function_environment(function: str) -> dict[str, Any]:
    resource = TEMPLATE["Resources"][function]["Properties"]
    common = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    return {**common, **resource["Environment"]["Variables"]}


def literal_variables(function: str) -> dict[str, str]:
    """The environment the template gives `function` where it is a plain string."""
    return {name: value for name, value in function_environment(function).items() if isinstance(value, str)}


def functions_of_the_template() -> list[str]:
    return sorted(
        logical_id
        for logical_id, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    )


def read_by(function: str) -> set[str]:
    """The bounded variables `function`'s code parses."""
    if function == "PredictFunction":
        return bounded_variables(PredictSettings, PolicySettings, ShortfallGoal)
    if function == "RetrainFunction":
        return bounded_variables(RetrainSettings, PolicySettings, ShortfallGoal)
    assert function == "WatchdogFunction", f"{function}: which settings does it parse? add it here"
    return WATCHDOG_READS


def parse_as(function: str, env: dict[str, str]) -> None:
    if function == "PredictFunction":
        PredictSettings.from_env(env)
    elif function == "RetrainFunction":
        RetrainSettings.from_env(env)
    else:
        load_handler("watchdog")._minutes(env["FALLBACK_RELEASE_MINUTES"])


def parameter_uses() -> list[tuple[str, str, str]]:
    """(parameter, function, variable) for every Number parameter a function's code reads."""
    uses = []
    for function in functions_of_the_template():
        for variable, value in function_environment(function).items():
            if not (isinstance(value, dict) and set(value) == {"Ref"}):
                continue
            parameter = TEMPLATE["Parameters"].get(value["Ref"])
            if parameter is not None and parameter["Type"] == "Number" and variable in read_by(function):
                uses.append((value["Ref"], function, variable))
    return uses


def test_every_number_parameter_a_function_reads_has_its_range_written_here():
    assert {parameter for parameter, _, _ in parameter_uses()} == set(TEMPLATE_RANGES)
    assert ("FallbackReleaseMinutes", "WatchdogFunction", "FALLBACK_RELEASE_MINUTES") in parameter_uses()
    assert ("CapacityPerInstance", "RetrainFunction", "CAPACITY_PER_INSTANCE") in parameter_uses()


@pytest.mark.parametrize(("parameter", "function", "variable"), parameter_uses())
def test_the_template_allows_exactly_what_the_function_accepts(parameter, function, variable):
    low, high, below, above = TEMPLATE_RANGES[parameter]
    spec = TEMPLATE["Parameters"][parameter]
    assert (str(spec.get("MinValue")), str(spec.get("MaxValue"))) == (low, high)
    env = {**BASE_ENV, "LEAD_TIME_MINUTES": "120", "GROUP_MAX_SIZE": "100", **literal_variables(function)}
    for value in (low, high, str(spec["Default"])):
        parse_as(function, {**env, variable: value})
    for value in (below, above):
        with pytest.raises(ValueError, match=variable):
            parse_as(function, {**env, variable: value})


def test_the_template_sets_only_values_the_functions_accept():
    predict_env = literal_variables("PredictFunction")
    retrain_env = literal_variables("RetrainFunction")
    assert predict_env["EVENT_MAX_EARLY_SECONDS"] == "60"
    PredictSettings.from_env({**BASE_ENV, **predict_env})
    RetrainSettings.from_env({**BASE_ENV, **retrain_env})


def test_retrain_never_promotes_a_model_predict_refuses_to_load():
    """Predict refuses a model object above MAX_MODEL_BYTES before hashing it; a retrain
    allowed a bigger one would promote a model that every predict run then refuses."""
    assert MAX_MODEL_BYTES == 50_000_000
    RetrainSettings.from_env({**BASE_ENV, "MAX_MODEL_MEGABYTES": "50"})
    with pytest.raises(ConfigurationError, match=out_of_range("MAX_MODEL_MEGABYTES")):
        RetrainSettings.from_env({**BASE_ENV, "MAX_MODEL_MEGABYTES": "50.00000000000001"})


# --- bucket keys: each in its own area -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODEL_MANIFEST_KEY", "state/x.json"),  # the probe: predict would read its state as a manifest
        ("STATE_KEY", "models/manifest.json"),  # the probe: predict would overwrite the manifest
        ("HISTORY_PREFIX", "../../models"),  # the probe
        ("MODEL_MANIFEST_KEY", "history/shop/manifest.json"),
        ("MODEL_MANIFEST_KEY", "/models/manifest.json"),
        ("MODEL_MANIFEST_KEY", "models/../state/x.json"),
        ("MODEL_MANIFEST_KEY", "models/./manifest.json"),
        ("MODEL_MANIFEST_KEY", "models//manifest.json"),
        ("MODEL_MANIFEST_KEY", "models/"),
        ("MODEL_MANIFEST_KEY", "models"),
        ("MODEL_MANIFEST_KEY", "modelsx/manifest.json"),
        ("MODEL_MANIFEST_KEY", " models/manifest.json"),
        ("MODEL_KEY", "state/shop/predict-state.json"),
        ("MODEL_KEY", "models/../history/x"),
        ("MODEL_KEY", "models/manifest.json"),  # the manifest's own key
        ("STATE_KEY", "state/"),
        ("STATE_KEY", "state"),
        ("STATE_KEY", "/state/x.json"),
        ("STATE_KEY", "state/../models/manifest.json"),
        ("STATE_KEY", "state/shop/"),
        ("STATE_KEY", "history/shop/x.json"),
        ("HISTORY_PREFIX", "/history/shop"),
        ("HISTORY_PREFIX", "history/../state"),
        ("HISTORY_PREFIX", "history//shop"),
        ("HISTORY_PREFIX", "history/shop//"),
        ("HISTORY_PREFIX", "history/."),
        ("HISTORY_PREFIX", "models/"),
        ("HISTORY_PREFIX", "state/shop"),
        ("HISTORY_PREFIX", "historyx"),
        ("HISTORY_PREFIX", "/"),
    ],
)
def test_a_key_outside_its_area_is_refused(name, value):
    with pytest.raises(ConfigurationError, match=name):
        PredictSettings.from_env({**BASE_ENV, name: value})


@pytest.mark.parametrize(
    ("name", "value", "attribute"),
    [
        ("MODEL_MANIFEST_KEY", "models/shop/manifest.json", lambda s: s.model.manifest_key),
        ("MODEL_KEY", "models/shop/model.npz", lambda s: s.model.model_key),
        ("STATE_KEY", "state/predict.json", lambda s: s.state_key),
        ("HISTORY_PREFIX", "history", lambda s: s.history_prefix),
        ("HISTORY_PREFIX", "history/", lambda s: s.history_prefix),
        ("HISTORY_PREFIX", "history/shop/", lambda s: s.history_prefix),
    ],
)
def test_keys_inside_their_area_are_accepted(name, value, attribute):
    assert attribute(PredictSettings.from_env({**BASE_ENV, name: value})) == value


def test_retrain_checks_its_keys_too():
    with pytest.raises(ConfigurationError, match="HISTORY_PREFIX"):
        RetrainSettings.from_env({**BASE_ENV, "HISTORY_PREFIX": "models/history"})
    with pytest.raises(ConfigurationError, match="MODEL_KEY"):
        RetrainSettings.from_env({**BASE_ENV, "MODEL_KEY": "state/model.npz"})


def test_keys_hold_however_the_location_is_built():
    with pytest.raises(ConfigurationError, match="MODEL_MANIFEST_KEY"):
        ModelLocation(bucket="b", manifest_key="state/x.json")


def test_a_group_name_cannot_lead_the_default_keys_out_of_their_area():
    with pytest.raises(ConfigurationError, match=r"HISTORY_PREFIX .*AUTO_SCALING_GROUP_NAME"):
        PredictSettings.from_env({**BASE_ENV, "AUTO_SCALING_GROUP_NAME": "../models"})
    with pytest.raises(ConfigurationError, match=r"STATE_KEY .*AUTO_SCALING_GROUP_NAME"):
        PredictSettings.from_env({**BASE_ENV, "AUTO_SCALING_GROUP_NAME": "..", "HISTORY_PREFIX": "history/x"})


def test_key_length_is_s3s_1024_bytes():
    PredictSettings.from_env({**BASE_ENV, "STATE_KEY": "state/" + "é" * 509})  # 1024 bytes
    with pytest.raises(ConfigurationError, match="STATE_KEY is 1025 bytes"):
        PredictSettings.from_env({**BASE_ENV, "STATE_KEY": "state/" + "é" * 509 + "x"})
    # The history backup appends "/YYYY/MM/DD.json.gz" (19 bytes) to its prefix.
    PredictSettings.from_env({**BASE_ENV, "HISTORY_PREFIX": "history/" + "x" * 997})  # 1005 bytes
    with pytest.raises(ConfigurationError, match="HISTORY_PREFIX is 1006 bytes"):
        PredictSettings.from_env({**BASE_ENV, "HISTORY_PREFIX": "history/" + "x" * 998})
