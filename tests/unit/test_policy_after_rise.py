"""Sizing after a sudden rise (issue 23, item 2): with `window_holds_reactive_floor` off,
the stabilization window remembers the forecast-driven recommendation (the forecast, a
planned event, the group's bounds), and the reactive floor holds only the run that
measured it. Each decision still never goes below the floor of its own run, MinSize or a
planned event, and scales in by at most `max_scale_in_step` a run."""

from __future__ import annotations

from dataclasses import replace

from saleor_scaling.calendar import PlannedEvent, PlannedFloor
from saleor_scaling.policy import Action, Decision, GroupCapacity, decide
from saleor_scaling.settings import PolicySettings, ScalingMode

HOLDS_FLOOR = PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1)
FORECAST_HELD = replace(HOLDS_FLOOR, window_holds_reactive_floor=False)


def managed(desired: int, min_size: int = 1, max_size: int = 10) -> GroupCapacity:
    return GroupCapacity(min_size, max_size, desired, desired, current_min_size=desired)


def test_the_spike_run_is_sized_by_its_floor_and_remembers_the_forecast() -> None:
    decision = decide(3.2, managed(4), 8, [], FORECAST_HELD)
    assert decision == Decision(
        8, 8, Action.SCALE_OUT, True, ("raised from 4 to reactive floor 8",), 8, remembered=4
    )
    assert decision.window_entry == 4


def test_by_default_the_window_remembers_the_floor_as_before() -> None:
    decision = decide(3.2, managed(4), 8, [], HOLDS_FLOOR)
    assert decision == Decision(8, 8, Action.SCALE_OUT, True, ("raised from 4 to reactive floor 8",), 8)
    assert decision.window_entry == 8


def test_after_the_spike_scale_in_starts_one_step_a_run() -> None:
    # The run after the spike: the floor is back to 2, the forecast (its lags now see the
    # spike) asks for 5. Holding the floor, the window keeps 8 for 30 minutes; holding the
    # forecast, it keeps the spike run's 4 and this run's 5: one step down to 7.
    held = decide(4.5, managed(8), 2, [8], HOLDS_FLOOR)
    assert (held.target, held.action, held.floor) == (8, Action.HOLD, 8)
    follows = decide(4.5, managed(8), 2, [4], FORECAST_HELD)
    assert follows == Decision(5, 7, Action.SCALE_IN, True, ("scale-in limited to 1 instance(s) per run",), 7)


def test_never_below_the_floor_of_its_own_run() -> None:
    # The rise lasts: this run's floor (7) still needs more than the forecast (5).
    decision = decide(4.5, managed(8), 7, [4, 5], FORECAST_HELD)
    assert (decision.recommended, decision.target, decision.floor) == (7, 7, 7)
    assert decision.window_entry == 5


def test_a_planned_event_and_min_size_are_remembered() -> None:
    event = PlannedEvent("sale", 1_700_000_000, 1_700_003_600, capacity=6)
    planned = PlannedFloor(6, event, "declared capacity")
    decision = decide(2.0, managed(4), 9, [], FORECAST_HELD, planned=planned)
    assert (decision.recommended, decision.target, decision.window_entry) == (9, 9, 6)
    at_min = decide(1.0, managed(4, min_size=3), 9, [], FORECAST_HELD)
    assert (at_min.recommended, at_min.window_entry) == (9, 3)


def test_the_floor_over_max_size_is_clamped_in_both() -> None:
    decision = decide(12.0, managed(4), 14, [], FORECAST_HELD)
    assert (decision.recommended, decision.target, decision.window_entry) == (10, 10, 10)


def test_the_template_passes_every_allowed_value_through() -> None:
    from saleor_scaling.settings import PredictSettings
    from tests.unit.test_settings import BASE_ENV, TEMPLATE, function_environment

    parameter = TEMPLATE["Parameters"]["ScaleInWindowHoldsReactiveFloor"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("true", ["true", "false"])
    assert function_environment("PredictFunction")["WINDOW_HOLDS_REACTIVE_FLOOR"] == {
        "Ref": "ScaleInWindowHoldsReactiveFloor"
    }
    parsed = {
        value: PredictSettings.from_env({**BASE_ENV, "WINDOW_HOLDS_REACTIVE_FLOOR": value}).policy
        for value in parameter["AllowedValues"]
    }
    assert parsed["true"].window_holds_reactive_floor is True
    assert parsed["false"].window_holds_reactive_floor is False
    assert PredictSettings.from_env(BASE_ENV).policy.window_holds_reactive_floor is True
