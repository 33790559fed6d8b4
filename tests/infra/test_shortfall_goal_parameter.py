"""The shortfall goal's parameters reach both functions, and the dashboard shows what the
nightly replay chose (template.yaml, infra-cfn/monitoring.yaml)."""

from __future__ import annotations

import json

from tests.conftest import REPO_ROOT
from tests.infra import cfn

ROOT = cfn.load(REPO_ROOT / "template.yaml")


def environment(function: str) -> dict[str, object]:
    variables: dict[str, object] = ROOT["Resources"][function]["Properties"]["Environment"]["Variables"]
    return variables


def test_the_goal_is_a_bounded_parameter_on_by_default() -> None:
    goal = ROOT["Parameters"]["TargetShortfallPercent"]
    assert (goal["Type"], goal["Default"], goal["MinValue"], goal["MaxValue"]) == ("Number", 1, 0, 20)
    assert "0 turns the tuning off" in goal["Description"]
    floor = ROOT["Parameters"]["TunedHeadroomQuantileFloor"]
    assert (floor["Type"], floor["Default"], floor["MinValue"], floor["MaxValue"]) == (
        "Number",
        0.5,
        0.5,
        0.99,
    )


def test_predict_and_retrain_read_the_goal_and_retrain_what_it_replays() -> None:
    for function in ("PredictFunction", "RetrainFunction"):
        variables = environment(function)
        assert variables["TARGET_SHORTFALL_PERCENT"] == {"Ref": "TargetShortfallPercent"}
        assert variables["TUNED_HEADROOM_QUANTILE_FLOOR"] == {"Ref": "TunedHeadroomQuantileFloor"}
    retrain = environment("RetrainFunction")
    assert retrain["HEADROOM_QUANTILE"] == {"Ref": "HeadroomQuantile"}
    assert retrain["MAX_SCALE_IN_STEP"] == {"Ref": "MaxScaleInStep"}
    assert retrain["SCALE_IN_STABILIZATION_MINUTES"] == {"Ref": "ScaleInStabilizationMinutes"}
    assert retrain["GROUP_MIN_SIZE"] == {"Ref": "GroupMinSize"}
    assert retrain["GROUP_MAX_SIZE"] == {"Ref": "GroupMaxSize"}


def test_the_dashboard_shows_the_goal_the_choice_and_the_expected_instance_hours() -> None:
    monitoring = cfn.template("monitoring")
    body = monitoring["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    values = {name: "x" for name in cfn.sub_variables(body)} | {"TargetCpuPercent": "70"}
    widgets = json.loads(cfn.render_sub(body, values | {"TargetShortfallPercent": "1"}))["widgets"]
    metrics = [metric for widget in widgets for metric in widget["properties"].get("metrics", [])]
    named = {part for metric in metrics for part in metric if isinstance(part, str)}
    assert {"TunedHeadroomQuantile", "ReplayShortfallPercent"} <= named
    goal = next(widget for widget in widgets if "ReplayShortfallPercent" in str(widget))
    assert goal["properties"]["annotations"]["horizontal"][0]["value"] == 1
    queries = [widget["properties"].get("query", "") for widget in widgets]
    assert any("retrain.tuning.chosen.instance_hours_per_day" in query for query in queries)
    stack = ROOT["Resources"]["MonitoringStack"]["Properties"]["Parameters"]
    assert stack["TargetShortfallPercent"] == {"Ref": "TargetShortfallPercent"}
    assert stack["RetrainLogGroupName"] == {"Ref": "RetrainLogGroup"}
