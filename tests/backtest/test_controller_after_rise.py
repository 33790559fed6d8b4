"""The backtest's controller keeps the same stabilization window as predict's state: with
`window_holds_reactive_floor` off, a spike's reactive floor sizes its own run only
(issue 23, item 2)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from saleor_scaling.settings import PolicySettings, ScalingMode
from saleor_scaling.simulation.simulator import GroupSettings, SimulatedGroup
from saleor_scaling.simulation.strategies import PredictiveController

HOLDS_FLOOR = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1)


def targets(policy: PolicySettings) -> list[int]:
    # 1,000 requests a minute in every step but step 10 (5,000: a reactive floor of 5);
    # the forecast at every anchor is 1,000 (one instance).
    steps = 30
    demand = np.full(steps, 1000.0)
    demand[10] = 5000.0
    upper = np.full(steps, 1000.0)
    capacity = np.full(steps, 1000.0)
    controller = PredictiveController(0, demand, upper, capacity, policy, 1, 10)
    group = SimulatedGroup(GroupSettings(boot_delay_minutes=0), initial=1)
    cpu = [math.nan] * (steps * 5)
    # The run at minute 60 reads anchor 10 (the bucket closed one step before the run).
    for minute in range(60, 90, 5):
        controller.decide(minute, group, cpu)
    return controller.log.targets


def test_holding_the_floor_keeps_the_spike_for_the_window() -> None:
    assert targets(HOLDS_FLOOR) == [5, 5, 5, 5, 5, 5]


def test_without_it_scale_in_follows_the_forecast_one_step_a_run() -> None:
    assert targets(replace(HOLDS_FLOOR, window_holds_reactive_floor=False)) == [5, 4, 3, 2, 1, 1]


def test_the_cli_sets_it() -> None:
    from saleor_scaling.backtest.cli import build_parser, config_from_args

    parser = build_parser()
    assert config_from_args(parser.parse_args(["nasa"])).policy.window_holds_reactive_floor is True
    off = config_from_args(parser.parse_args(["nasa", "--window-holds-floor", "off"]))
    assert off.policy.window_holds_reactive_floor is False
