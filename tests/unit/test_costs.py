"""The cost model: EMF lines counted as CloudWatch bills them, the templates' defaults read
as deployed, and each price applied as its page says."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.costs import (
    HOURS_PER_MONTH,
    PRICES,
    MetricKey,
    RunProfile,
    emf_metrics,
    monthly_costs,
    runs_per_month,
    template_defaults,
    total,
)


def _emf(dimensions: list[list[str]], names: list[str], **values: object) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "SaleorPredictiveScaling",
                        "Dimensions": dimensions,
                        "Metrics": [{"Name": n, "Unit": "Count"} for n in names],
                    }
                ],
            },
            **values,
            **{n: [1.0] for n in names},
        }
    )


def test_each_dimension_set_of_a_directive_is_a_metric_of_its_own():
    line = _emf(
        [["service"], ["AutoScalingGroupName", "service"]],
        ["A", "B"],
        service="predict",
        AutoScalingGroupName="g",
    )
    found = emf_metrics(['{"level":"INFO","message":"not a metric"}', "START RequestId: x", line])
    assert len(found) == 4
    assert MetricKey("SaleorPredictiveScaling", "A", (("service", "predict"),)) in found
    assert (
        MetricKey("SaleorPredictiveScaling", "B", (("AutoScalingGroupName", "g"), ("service", "predict")))
        in found
    )


def test_the_same_metric_with_another_dimension_value_is_another_metric():
    one = _emf([["AutoScalingGroupName"]], ["A"], AutoScalingGroupName="a")
    other = _emf([["AutoScalingGroupName"]], ["A"], AutoScalingGroupName="b")
    assert len(emf_metrics([one, one, other])) == 2


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("rate(5 minutes)", HOURS_PER_MONTH * 12),
        ("rate(1 hour)", HOURS_PER_MONTH),
        ("rate(2 days)", HOURS_PER_MONTH / 48),
        ("cron(15 3 * * ? *)", HOURS_PER_MONTH / 24),
        ("cron(0,30 3 * * ? *)", HOURS_PER_MONTH / 12),
    ],
)
def test_runs_per_month_of_a_schedule(schedule, runs):
    assert runs_per_month(schedule) == pytest.approx(runs)


def test_a_schedule_the_model_cannot_count_is_refused():
    with pytest.raises(ValueError, match="cannot count"):
        runs_per_month("cron(0 3 ? * MON-FRI *)")


def test_the_templates_defaults_are_read_as_deployed():
    defaults = template_defaults()
    predict, retrain = defaults.functions["predict"], defaults.functions["retrain"]
    assert (predict.memory_mb, predict.schedule) == (512, "rate(5 minutes)")
    assert (retrain.memory_mb, retrain.timeout_seconds) == (1024, 600)
    assert retrain.runs_per_month == pytest.approx(HOURS_PER_MONTH / 24)
    assert defaults.kms_keys == 1
    assert defaults.dashboards == 1
    assert defaults.email_subscriptions == 0  # AlarmEmail is empty by default
    assert defaults.alarm_metrics["Http5xxAlarm"] == 3  # metric math: billed per metric read
    assert defaults.alarm_metrics["HighCpuAlarm"] == 1


def _profile(function: str, shares: dict[MetricKey, float], **overrides: float) -> RunProfile:
    figures = {
        "seconds": 1.0,
        "init_seconds": 2.0,
        "log_bytes": 3000.0,
        "log_events": 6.0,
        "metrics_requested": 6.0,
        "sns_publishes": 0.0,
    } | overrides
    return RunProfile(
        function=function,
        runs=10,
        s3_requests={"GetObject": 3.0, "PutObject": 1.0, "DeleteObject": 5.0},
        metric_hours_share=shares,
        **figures,
    )


_DEFAULTS = template_defaults()


def _line(lines, prefix):
    return next(line for line in lines if line.item.startswith(prefix))


def test_a_metric_sent_every_hour_costs_a_whole_metric_month_and_a_nightly_one_an_hour_a_night():
    key = MetricKey("SaleorPredictiveScaling", "X", ())
    defaults = template_defaults()
    hourly = monthly_costs({"predict": _profile("predict", {key: 1.0})}, defaults)
    assert _line(hourly, "custom metrics").usd == pytest.approx(0.30)
    nightly = monthly_costs({"retrain": _profile("retrain", {key: 1.0})}, defaults)
    assert _line(nightly, "custom metrics").usd == pytest.approx(0.30 / 24)


def test_get_metric_data_lambda_and_s3_are_priced_per_run():
    defaults = template_defaults()
    lines = monthly_costs({"predict": _profile("predict", {})}, defaults, cold_starts_per_hour={"predict": 0})
    runs = HOURS_PER_MONTH * 12
    assert _line(lines, "GetMetricData").usd == pytest.approx(runs * 6 * 0.01 / 1000)
    assert _line(lines, "Lambda compute").quantity == pytest.approx(runs * 0.5 * 1.0)  # 512 MB, 1 s
    assert _line(lines, "S3 PUT").quantity == pytest.approx(runs)  # DELETE is free
    assert _line(lines, "S3 GET").quantity == pytest.approx(runs * 3)
    assert _line(lines, "X-Ray").quantity == pytest.approx(runs)
    cold = monthly_costs({"predict": _profile("predict", {})}, defaults, cold_starts_per_hour={"predict": 1})
    assert _line(cold, "Lambda compute").quantity - _line(lines, "Lambda compute").quantity == pytest.approx(
        HOURS_PER_MONTH * 0.5 * 2.0
    )


def test_fixed_resources_are_priced_from_the_templates():
    lines = monthly_costs({}, template_defaults())
    assert _line(lines, "KMS key").usd == pytest.approx(1.0)
    assert _line(lines, "dashboard").usd == pytest.approx(3.0)
    assert total(lines, "scaler") == 0.0


def test_every_price_names_its_page_and_date():
    for name, price in PRICES.items():
        assert price.source.startswith("https://aws.amazon.com/"), name
        assert price.read.count("-") == 2, name


@settings(max_examples=50, deadline=None)
@given(
    shares=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    extra=st.floats(0.0, 1.0),
)
def test_another_metric_never_lowers_the_bill_and_the_total_is_the_sum(shares, extra):
    keys = {MetricKey("N", f"M{i}", ()): share for i, share in enumerate(shares)}
    defaults = _DEFAULTS
    before = monthly_costs({"predict": _profile("predict", keys)}, defaults)
    more = keys | {MetricKey("N", "extra", ()): extra}
    after = monthly_costs({"predict": _profile("predict", more)}, defaults)
    assert total(after) >= total(before)
    assert total(after) - total(before) == pytest.approx(0.30 * extra)
    assert total(after) == pytest.approx(sum(line.usd for line in after))
