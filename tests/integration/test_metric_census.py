"""The custom metrics are counted from what the real handlers print, and every metric the
dashboard and the alarms read is one they really emit (or one AWS publishes).

One metered replay (`saleor_scaling.local.metering`: retrain, then an hour of predict runs in
emulated AWS, then each fault with a metric of its own provoked once) is shared by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from saleor_scaling import METRICS_NAMESPACE
from saleor_scaling.costs import (
    AGENT_NAMESPACE,
    AWS_NAMESPACE_PREFIX,
    MetricKey,
    emf_metrics,
    monthly_costs,
    template_defaults,
    total,
)
from tests.conftest import REPO_ROOT
from tests.infra.cfn import render_sub, template

GROUP = "saleor-api"  # the emulated shop's group (saleor_scaling.local.emulator.create_shop)
MONTHLY_BUDGET_USD = 2.0

pytestmark = pytest.mark.slow


def _trace_or_skip() -> None:
    from saleor_scaling.backtest.traces import TraceError, load_trace

    try:
        load_trace("nasa")
    except TraceError as error:
        pytest.skip(f"the NASA trace is not available: {error}")


@pytest.fixture(scope="module")
def metering() -> Any:
    _trace_or_skip()
    from saleor_scaling.local.metering import meter

    return meter("nasa", replay_hours=1.0)


# ---------------------------------------------------------------- what the templates read


def _expand_dashboard_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Dashboard metric rows with CloudWatch's shorthand expanded: "." repeats the previous
    row's element at that position, "..." the rest of the previous row's metric part."""
    expanded: list[list[Any]] = []
    previous: list[Any] = []
    for row in rows:
        if row and isinstance(row[0], dict):  # a math expression, not a metric
            expanded.append(row)
            continue
        options = [part for part in row if isinstance(part, dict)]
        parts = [part for part in row if not isinstance(part, dict)]
        full: list[Any] = []
        for position, part in enumerate(parts):
            if part == "...":
                full.extend(previous[len(full) :])
                break
            full.append(previous[position] if part == "." else part)
        expanded.append(full + options)
        previous = full
    return expanded


def dashboard_references() -> set[MetricKey]:
    monitoring = template("monitoring")
    text = monitoring["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(
        render_sub(
            text,
            {
                "AWS::Region": "us-east-1",
                "LoadBalancerFullName": "app/shop/0123456789abcdef",
                "AutoScalingGroupName": GROUP,
                "PredictFunctionName": "predict",
                "PredictLogGroupName": "/saleor-scaling/local/predict",
                "RetrainFunctionName": "retrain",
                "RetrainLogGroupName": "/saleor-scaling/local/retrain",
                "TargetCpuPercent": "70",
                "TargetShortfallPercent": "1",
            },
        )
    )
    found: set[MetricKey] = set()
    for widget in body["widgets"]:
        for row in _expand_dashboard_rows(widget["properties"].get("metrics", [])):
            parts = [part for part in row if isinstance(part, str)]
            if not parts:
                continue
            namespace, name, *pairs = parts
            dimensions = tuple(sorted(zip(pairs[::2], pairs[1::2], strict=True)))
            found.add(MetricKey(namespace, name, dimensions))
    return found


def dashboard_log_fields() -> set[str]:
    """The decision-log fields the dashboard's Logs Insights widgets read."""
    import re

    monitoring = template("monitoring")
    text = monitoring["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return set(re.findall(r"\bdecision\.[a-z_.]*[a-z_]", text))


def _has_path(record: Any, path: str) -> bool:
    for part in path.split("."):
        if not isinstance(record, dict) or part not in record:
            return False
        record = record[part]
    return True


def _resolve(value: Any) -> str:
    if isinstance(value, dict) and value == {"Ref": "AutoScalingGroupName"}:
        return GROUP
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    return str(value)


def alarm_references() -> set[MetricKey]:
    found: set[MetricKey] = set()
    for resource in template("monitoring")["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        metrics = [q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q]
        if "MetricName" in properties:
            metrics.append(properties)
        for metric in metrics:
            dimensions = tuple(
                sorted((d["Name"], _resolve(d["Value"])) for d in metric.get("Dimensions", []))
            )
            found.add(MetricKey(metric["Namespace"], metric["MetricName"], dimensions))
    return found


def test_the_reference_parser_reads_the_templates():
    """The parser finds the metrics the dashboard and alarms are about (else the checks
    below would pass vacuously)."""
    names = {key.name for key in dashboard_references() | alarm_references()}
    assert {
        "GroupDesiredCapacity",
        "PredictedCapacity",
        "RecommendedCapacity",
        "FallbackUsed",
        "Errors",
    } <= names
    expanded = {
        key
        for key in dashboard_references()
        if key.namespace == METRICS_NAMESPACE and key.name == "TrainingMae"
    }
    assert expanded == {
        MetricKey(METRICS_NAMESPACE, "TrainingMae", (("AutoScalingGroupName", GROUP), ("service", "retrain")))
    }


# ---------------------------------------------------------------- emitted vs referenced


def test_every_dashboard_and_alarm_metric_is_emitted_or_published_by_aws(metering):
    emitted = metering.emitted()
    agent_config = (REPO_ROOT / "infra-cfn" / "app.yaml").read_text()
    missing = []
    for key in sorted(dashboard_references() | alarm_references()):
        if key.namespace.startswith(AWS_NAMESPACE_PREFIX):
            continue
        if key.namespace == AGENT_NAMESPACE:
            assert f'"{key.name.split("_", 1)[0]}"' in agent_config, key  # the agent collects it
            continue
        if key not in emitted:
            missing.append(key.label())
    records = [
        json.loads(line)
        for run in metering.runs("predict")
        for line in run.lines
        if line.startswith("{") and '"decision"' in line
    ]
    fields = dashboard_log_fields()
    assert fields, "the dashboard reads no decision-log field"
    missing += [field for field in sorted(fields) if not any(_has_path(r, field) for r in records)]
    assert not missing, f"referenced but never emitted by the handlers: {missing}"


def test_only_what_the_dashboard_or_an_alarm_reads_is_published_every_run(metering):
    """Steady-state runs publish nothing the dashboard and alarms do not read; the rest is in
    the decision log line. Counters of faults are published only when the fault happens."""
    referenced = dashboard_references() | alarm_references()
    steady = metering.emitted("steady")
    assert steady, "the replay emitted no metric at all"
    unread = sorted(key.label() for key in steady - referenced)
    assert not unread, f"published every run but read by no widget or alarm: {unread}"


def test_fault_counters_are_emitted_when_the_fault_happens_and_not_before(metering):
    steady = {key.name for key in metering.emitted("steady")}
    faults = {key.name for key in metering.emitted("fault")}
    for counter in ("DuplicateEvents", "InvalidEvents", "RejectedEvents", "StateResets", "PredictErrors"):
        assert counter in faults, counter
        assert counter not in steady, counter
    assert "RetrainErrors" in faults
    # A malformed event carries the group's dimension like every other metric, so the
    # dashboard's "invalid events" line (which names the group) sees it.
    invalid = {key for key in metering.emitted("fault") if key.name == "InvalidEvents"}
    assert invalid == {
        MetricKey(
            METRICS_NAMESPACE, "InvalidEvents", (("AutoScalingGroupName", GROUP), ("service", "predict"))
        )
    }


def test_no_cold_start_metric(metering):
    assert not [key for key in metering.emitted() if key.name == "ColdStart"]


def test_the_machinery_costs_at_most_two_dollars_a_month_at_the_defaults(metering):
    profiles = {name: metering.profile(name) for name in ("predict", "retrain")}
    lines = monthly_costs(profiles, template_defaults())
    scaler = total(lines, "scaler")
    assert scaler <= MONTHLY_BUDGET_USD, "\n".join(f"{line.item}: {line.usd:.3f}" for line in lines)
    metrics = next(line for line in lines if line.item.startswith("custom metrics"))
    assert metrics.usd < 1.0, metrics


# ---------------------------------------------------------------- the count is the output's


def test_a_metric_added_to_a_handler_is_counted_and_billed():
    """The census is read from what the handlers print: one more metric in predict's
    publish_metrics is one more distinct metric, billed for every hour it is sent."""
    _trace_or_skip()
    from saleor_scaling.local.metering import meter

    def add_probe(function: str, module: ModuleType) -> None:
        if function != "predict":
            return
        publish = module.__dict__["publish_metrics"]

        def publish_with_probe(result: Any) -> None:
            publish(result)
            module.__dict__["metrics"].add_metric(name="CensusProbe", unit="Count", value=1)

        module.__dict__["publish_metrics"] = publish_with_probe

    plain = meter("nasa", replay_hours=0.5, faults=False, retrain=False)
    probed = meter("nasa", replay_hours=0.5, faults=False, retrain=False, prepare=add_probe)
    probe = MetricKey(
        METRICS_NAMESPACE, "CensusProbe", (("AutoScalingGroupName", GROUP), ("service", "predict"))
    )
    assert probed.emitted() - plain.emitted() == {probe}
    defaults = template_defaults()
    before = monthly_costs({"predict": plain.profile("predict")}, defaults)
    after = monthly_costs({"predict": probed.profile("predict")}, defaults)
    cost = {
        label: next(line.usd for line in lines if line.item.startswith("custom metrics"))
        for label, lines in (("before", before), ("after", after))
    }
    assert cost["after"] - cost["before"] == pytest.approx(0.30)


def test_metering_sees_the_handlers_aws_calls(metering):
    """GetMetricData's metrics are counted from the calls predict really made."""
    predict = metering.profile("predict")
    assert predict.metrics_requested == 6  # the six 5-minute series; no 1-minute query
    retrain = metering.profile("retrain")
    assert retrain.metrics_requested > predict.metrics_requested
    assert predict.s3_requests.get("PutObject") == pytest.approx(1.0)  # the state, once a run
    assert Path(REPO_ROOT / "events" / "retrain.json").is_file()


@pytest.mark.parametrize("function", ["predict", "retrain"])
def test_a_malformed_first_event_carries_the_group_dimension(function, monkeypatch, capsys):
    """In a fresh container a malformed event is rejected before the settings are read;
    its InvalidEvents still names the group, as the dashboard's line does."""
    from saleor_scaling.local.emulator import LocalLambdaContext, load_function

    monkeypatch.setenv("AUTO_SCALING_GROUP_NAME", "shop-asg")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    module = load_function(function)
    module.__dict__["metrics"].clear_default_dimensions()  # as in a new execution environment
    capsys.readouterr()
    with pytest.raises(ValueError, match="malformed event"):
        module.lambda_handler(
            {"detail-type": "Scheduled Event", "time": "yesterday"}, LocalLambdaContext(function)
        )
    emitted = emf_metrics(capsys.readouterr().out.splitlines())
    assert emitted == {
        MetricKey(
            METRICS_NAMESPACE, "InvalidEvents", (("AutoScalingGroupName", "shop-asg"), ("service", function))
        )
    }
