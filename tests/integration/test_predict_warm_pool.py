"""The predict handler sizing the group's warm pool against emulated Auto Scaling
(WARM_POOL_MAX_SIZE above 0), and leaving it alone by default."""

from __future__ import annotations

from typing import Any


def pool(world) -> dict[str, Any]:
    described: dict[str, Any] = world.session.client("autoscaling").describe_warm_pool(
        AutoScalingGroupName=world.shop.group_name
    )
    return described


def add_pool(world, state: str = "Hibernated") -> None:
    world.session.client("autoscaling").put_warm_pool(
        AutoScalingGroupName=world.shop.group_name,
        MinSize=1,
        PoolState=state,
        InstanceReusePolicy={"ReuseOnScaleIn": True},
    )


def pool_with_settings(world, monkeypatch, **environment: str) -> None:
    """A warm pool of 1 on the group, and predict's settings read again with `environment`."""
    add_pool(world)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    world.handler.reset_dependencies()


def test_without_a_maximum_the_pool_is_left_as_the_template_set_it(world):
    add_pool(world)
    result = world.invoke()
    assert result["status"] == "scaled"
    assert "warm_pool" not in result["decision"]
    configuration = pool(world)["WarmPoolConfiguration"]
    assert configuration["MinSize"] == 1
    assert "MaxGroupPreparedCapacity" not in configuration


def test_the_handler_sizes_the_pool_in_the_decision_it_logs(world, monkeypatch):
    pool_with_settings(world, monkeypatch, WARM_POOL_MIN_SIZE="1", WARM_POOL_MAX_SIZE="3")
    result = world.invoke()
    sized = result["decision"]["warm_pool"]
    # The emulated shop's rise: 8 instances now, 10 at the busiest of the same hour yesterday.
    assert result["decision"]["target"] == 8
    assert sized == {
        "size_before": 1,
        "max_prepared_before": -1,
        "size": 2,
        "coming_hour_needs": 10,
        "clamps": [],
        "applied": True,
        "explanation": "warm pool at least 1 -> 2 (the coming hour needs up to 10, desired 8)",
    }
    configuration = pool(world)["WarmPoolConfiguration"]
    assert (configuration["MinSize"], configuration["MaxGroupPreparedCapacity"]) == (
        sized["size"],
        sized["size"],
    )
    assert configuration["PoolState"] == "Hibernated"
    assert configuration["InstanceReusePolicy"] == {"ReuseOnScaleIn": True}
    assert sized["explanation"] in result["reason"]
    # The group's own sizes are the capacity decision's alone.
    assert world.desired() == result["decision"]["target"]
    assert world.describe()["MinSize"] == result["decision"]["floor"]


def test_forecast_only_leaves_the_pool_and_says_what_it_would_set(world, monkeypatch):
    pool_with_settings(world, monkeypatch, SCALING_MODE="forecast-only", WARM_POOL_MAX_SIZE="3")
    result = world.invoke()
    sized = result["decision"]["warm_pool"]
    assert sized["applied"] is False
    assert sized["explanation"].startswith("would set warm pool at least 1 -> ")
    assert pool(world)["WarmPoolConfiguration"]["MinSize"] == 1


def test_a_pool_that_cannot_be_read_is_a_warning_line_and_the_group_still_scales(world, monkeypatch, caplog):
    pool_with_settings(world, monkeypatch, WARM_POOL_MAX_SIZE="3")
    _, ports = world.handler.dependencies()

    def denied() -> None:
        raise RuntimeError("AccessDenied")

    monkeypatch.setattr(ports.warm_pool, "describe", denied)
    caplog.set_level("INFO", logger="predict")
    result = world.invoke()
    assert result["status"] == "scaled"
    assert result["warm_pool_note"] == "warning: could not read the warm pool (RuntimeError: AccessDenied)"
    assert "warm_pool" not in result["decision"]
    decision_lines = [record for record in caplog.records if hasattr(record, "decision")]
    assert [record.levelname for record in decision_lines] == ["WARNING"]
    assert pool(world)["WarmPoolConfiguration"]["MinSize"] == 1
