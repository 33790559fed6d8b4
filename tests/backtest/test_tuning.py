"""The shortfall goal (`--sweep --target-shortfall`): the cheapest simulated setting of
ours that met it, and the template parameters that deploy it."""

from __future__ import annotations

import pytest

from saleor_scaling.backtest.cli import _percent, main
from saleor_scaling.backtest.frontier import HEADROOM_QUANTILES, Sweep, SweepPoint
from saleor_scaling.backtest.tuning import Tuning, tune
from tests.conftest import REPO_ROOT
from tests.infra.cfn import load


def ours(
    quantile: float,
    cpu: float,
    window: int,
    share: float,
    cost: float,
    default: bool = False,
    step: int | None = None,
    floor: bool | None = None,
) -> SweepPoint:
    return SweepPoint(
        "predictive",
        "headroom_quantile",
        quantile,
        0,
        share,
        cost * 100,
        cost,
        default,
        cpu,
        window,
        max_scale_in_step=step,
        window_holds_reactive_floor=floor,
    )


def tune_among(points: list[SweepPoint], goal: float) -> Tuning:
    """`tune` over a hand-made sweep of `points` (capacity 1000 at the 70 % target)."""
    return tune(Sweep("hand", 1.0, 1440, 100.0, points, []), goal, 1000.0, 70.0)


def overrides_of(tuning: Tuning) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in tuning.overrides().split())


def sweep() -> Sweep:
    points = [
        ours(0.6, 70.0, 30, 0.0080, 1.10, default=True),
        ours(0.7, 70.0, 30, 0.0045, 1.16),
        ours(0.6, 60.0, 10, 0.0049, 1.12),  # meets 0.5 % for less than 0.7 at 70 %
        ours(0.9, 50.0, 30, 0.0010, 1.40),
        SweepPoint("predictive", "forecast-only", 0.0, 0, 0.0030, 125.0, 1.25, False, 40.0, None),
        # A peer cheaper still: never chosen, it is not ours to deploy.
        SweepPoint("reactive", "target_cpu_percent", 50.0, 0, 0.0040, 100.0, 1.00, False),
    ]
    return Sweep("hand", 1.0, 1440, 100.0, points, [])


def test_the_cheapest_setting_of_ours_that_meets_the_goal_is_chosen_with_its_overrides():
    tuning = tune(sweep(), 0.005, 1000.0, 70.0)
    assert tuning.chosen is not None
    assert tuning.chosen.setting == "headroom_quantile=0.6, cpu=60, window=10"
    assert tuning.overrides() == (
        "ScalingMode=forecast-and-scale HeadroomQuantile=0.6 TargetCpuPercent=60 CapacityPerInstance=857 "
        "ScaleInStabilizationMinutes=10 TargetShortfallPercent=0.5"
    )
    text = tuning.render()
    assert "cheapest setting that met it: headroom_quantile=0.6, cpu=60, window=10: 0.490% short" in text
    assert (
        "the defaults (headroom_quantile=0.6, cpu=70, window=30): 0.800% short for 1.100 x oracle (+1.8%"
        in text
    )
    assert "deploy it: sam deploy --parameter-overrides ScalingMode=forecast-and-scale" in text


def test_a_setting_with_predictive_scale_in_off_deploys_max_scale_in_step_0():
    points = [
        ours(0.6, 70.0, 30, 0.0080, 1.10, default=True),
        ours(0.6, 70.0, 10, 0.0040, 1.05, step=0),
    ]
    tuning = tune_among(points, 0.005)
    assert tuning.chosen is not None
    assert tuning.chosen.setting == "headroom_quantile=0.6, cpu=70, window=10, step=0"
    assert tuning.overrides() == (
        "ScalingMode=forecast-and-scale HeadroomQuantile=0.6 TargetCpuPercent=70 CapacityPerInstance=1000 "
        "ScaleInStabilizationMinutes=10 MaxScaleInStep=0 TargetShortfallPercent=0.5"
    )


def test_a_goal_met_only_by_forecast_only_says_switch_scaling_off():
    tuning = tune(sweep(), 0.003, 1000.0, 70.0)
    assert tuning.chosen is not None
    assert tuning.chosen.knob == "forecast-only"
    assert tuning.overrides() == (
        "ScalingMode=forecast-only TargetCpuPercent=40 CapacityPerInstance=571 TargetShortfallPercent=0.3"
    )


def test_a_goal_nothing_met_names_the_least_short_and_deploys_nothing():
    tuning = tune(sweep(), 0.0005, 1000.0, 70.0)
    assert tuning.chosen is None
    assert tuning.overrides() == ""
    assert tuning.render() == (
        "Shortfall goal 0.05% of minutes:\n"
        "  no setting of ours met it; the least short was headroom_quantile=0.9, cpu=50, window=30: "
        "0.100% short for 1.400 x oracle. Raise MaxSize or lower the goal."
    )
    assert tuning.to_json()["chosen"] is None


def test_a_goal_exactly_met_counts_and_ties_go_to_the_less_short():
    points = [ours(0.6, 70.0, 30, 0.005, 1.2, True), ours(0.7, 70.0, 30, 0.004, 1.2)]
    tuning = tune_among(points, 0.005)
    assert tuning.chosen == points[1]
    assert tune_among(points[:1], 0.005).chosen == points[0]


@pytest.mark.parametrize("goal", [-0.01, 1.0, float("nan")])
def test_an_absurd_goal_is_refused(goal):
    with pytest.raises(ValueError, match="shortfall goal"):
        tune(sweep(), goal, 1000.0, 70.0)


def test_a_sweep_without_ours_is_refused():
    with pytest.raises(ValueError, match="no setting of ours"):
        tune_among(sweep().points[-1:], 0.01)


@pytest.mark.parametrize(
    ("raw", "share"), [("0.5%", 0.005), ("0.5 %", 0.005), ("0.005", 0.005), ("0%", 0.0), ("20%", 0.2)]
)
def test_the_goal_reads_as_a_percentage_or_a_share(raw, share):
    assert _percent(raw) == pytest.approx(share)


@pytest.mark.parametrize("raw", ["150%", "25%", "20.001%", "-0.1%"])
def test_a_goal_out_of_range_is_a_clear_error(raw, capsys):
    # 20 % is TargetShortfallPercent's MaxValue: a goal above it prints overrides
    # CloudFormation refuses.
    with pytest.raises(SystemExit):
        main(["nasa", "--sweep", f"--target-shortfall={raw}"])
    assert "not between 0 and 20 % (TargetShortfallPercent's range)" in capsys.readouterr().err


def test_a_setting_that_releases_the_floor_deploys_the_window_without_it():
    points = [
        ours(0.6, 70.0, 30, 0.0080, 1.10, default=True, step=1, floor=True),
        ours(0.7, 80.0, 10, 0.0045, 1.04, step=1, floor=False),
    ]
    tuning = tune_among(points, 0.005)
    assert tuning.chosen is not None
    assert tuning.chosen.setting == "headroom_quantile=0.7, cpu=80, window=10, step=1, floor=released"
    assert tuning.overrides() == (
        "ScalingMode=forecast-and-scale HeadroomQuantile=0.7 TargetCpuPercent=80 CapacityPerInstance=1143 "
        "ScaleInStabilizationMinutes=10 MaxScaleInStep=1 ScaleInWindowHoldsReactiveFloor=false "
        "TargetShortfallPercent=0.5"
    )
    # The floor a setting holds is deployed explicitly, never left to the template's default.
    held = tune_among(points[:1], 0.009)
    assert held.overrides().endswith(
        "MaxScaleInStep=1 ScaleInWindowHoldsReactiveFloor=true TargetShortfallPercent=0.9"
    )
    assert held.chosen is not None
    assert held.chosen.setting == "headroom_quantile=0.6, cpu=70, window=30, step=1"


# --- the overrides deploy the choice whole, goal included ---------------------------------

TEMPLATE_PARAMETERS = load(REPO_ROOT / "template.yaml")["Parameters"]


def every_kind_of_choice() -> list[tuple[float, SweepPoint]]:
    """(goal, point) for each shape of setting the sweep can choose."""
    return [
        (0.005, ours(0.6, 60.0, 10, 0.0049, 1.12)),
        (0.01, ours(0.95, 30.0, 10, 0.009, 1.05, step=0)),
        (0.2, ours(0.5, 90.0, 30, 0.15, 0.9, step=1, floor=False)),
        (0.0, SweepPoint("predictive", "forecast-only", 0.0, 0, 0.0, 125.0, 1.25, False, 40.0, None)),
    ]


@pytest.mark.parametrize(("goal", "point"), every_kind_of_choice())
def test_every_override_names_a_template_parameter_with_a_value_it_allows(goal, point):
    """`sam deploy` refuses an unknown parameter or a value outside its AllowedValues or
    range: what the sweep prints must deploy as printed."""
    tuning = tune_among([point], goal)
    overrides = overrides_of(tuning)
    assert overrides
    for name, value in overrides.items():
        spec = TEMPLATE_PARAMETERS[name]
        if "AllowedValues" in spec:
            assert value in [str(allowed) for allowed in spec["AllowedValues"]], (name, value)
        if spec["Type"] == "Number":
            assert float(spec.get("MinValue", "-inf")) <= float(value) <= float(spec.get("MaxValue", "inf"))


def test_the_sweep_spans_every_headroom_quantile_a_deployment_may_set():
    """A shop that must rarely be short deploys a high HeadroomQuantile (the nightly
    replay tunes it up to the template's MaxValue): a sweep that stopped below it would
    read ours' frontier, and choose a setting, without ours' most careful settings."""
    spec = TEMPLATE_PARAMETERS["HeadroomQuantile"]
    assert min(HEADROOM_QUANTILES) == float(spec["MinValue"])
    assert max(HEADROOM_QUANTILES) == float(spec["MaxValue"])


@pytest.mark.parametrize(
    ("goal", "printed"),
    [(0.005, "0.5"), (0.01, "1"), (0.007, "0.7"), (0.0, "0"), (0.2, "20"), (1e-7, "0.00001")],
)
def test_the_overrides_deploy_the_goal_the_sweep_chose_for(goal, printed):
    """The nightly tuning re-chooses the quantile for TargetShortfallPercent (1 % unless
    set): left out, a setting chosen for 0.5 % would be re-tuned each night for 1 %."""
    point = ours(0.9, 70.0, 30, goal, 1.2, step=1)
    assert overrides_of(tune_among([point], goal))["TargetShortfallPercent"] == printed
