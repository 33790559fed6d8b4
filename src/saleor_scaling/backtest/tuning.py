"""A shortfall goal: the cheapest setting of ours that met it in a sweep (`--target-shortfall`).

The operator states the share of minutes short they accept; of the settings the sweep ran
for ours (HeadroomQuantile x TargetCpuPercent x ScaleInStabilizationMinutes x MaxScaleInStep x
ScaleInWindowHoldsReactiveFloor, and ScalingMode forecast-only at each target), the one that
met the goal with the fewest instance-hours is printed with the template parameters that
deploy it. A deployment runs one setting, so the choice is among the points the sweep
simulated, never a reading between two of them (the frontier table's hull assumes two
settings run by turns).

The forecasts behind each point are walk-forward (every night's model saw only the past),
but the choice of setting is made on the same days it is judged on: on the next weeks the
chosen setting is short somewhat more often than it was here. Hence the margin the docs
advise, and a re-run as the history grows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from saleor_scaling.backtest.frontier import FORECAST_ONLY, Sweep, SweepPoint
from saleor_scaling.shortfall_goal import cheapest_meeting

OURS = "predictive"


@dataclass(frozen=True)
class Tuning:
    goal_share: float
    """The share of minutes short the operator accepts (0.005: 0.5 %)."""
    chosen: SweepPoint | None
    """The cheapest of ours' settings short at most `goal_share`; None: none was."""
    least_short: SweepPoint
    """Ours' setting short least often (cheapest among equals): what comes closest."""
    default: SweepPoint | None
    capacity_per_instance: float
    """CapacityPerInstance at the sweep's own target (`--capacity`)."""
    base_target_cpu_percent: float

    def overrides(self) -> str:
        """`sam deploy --parameter-overrides` for the chosen setting ('' without one)."""
        point = self.chosen
        if point is None or point.target_cpu_percent is None:
            return ""
        cpu = point.target_cpu_percent
        # CapacityPerInstance is the requests-per-target target at TargetCpuPercent: it
        # scales with the target, as the sweep simulated it (`frontier.at_reactive_target`).
        capacity = round(self.capacity_per_instance * cpu / self.base_target_cpu_percent)
        common = f"TargetCpuPercent={cpu:g} CapacityPerInstance={capacity}"
        # The nightly job re-chooses HeadroomQuantile for TargetShortfallPercent (1 % unless
        # set): the goal is deployed too, or a setting chosen for 0.5 % is re-tuned for 1 %.
        # Fixed-point: CloudFormation's Number is not documented to take 1e-05.
        goal = f" TargetShortfallPercent={100 * self.goal_share:.6f}".rstrip("0").rstrip(".")
        if point.knob == FORECAST_ONLY:
            return f"ScalingMode=forecast-only {common}{goal}"
        window, step = point.scale_in_stabilization_minutes, point.max_scale_in_step
        floor = point.window_holds_reactive_floor
        return (
            f"ScalingMode=forecast-and-scale HeadroomQuantile={point.value:g} {common}"
            + (f" ScaleInStabilizationMinutes={window}" if window is not None else "")
            + (f" MaxScaleInStep={step}" if step is not None else "")
            + (f" ScaleInWindowHoldsReactiveFloor={str(floor).lower()}" if floor is not None else "")
            + goal
        )

    def render(self) -> str:
        goal = f"Shortfall goal {self.goal_share:.2%} of minutes"
        lines = [goal + ":"]
        if self.chosen is None:
            closest = self.least_short
            lines.append(
                f"  no setting of ours met it; the least short was {closest.setting}: "
                f"{closest.under_provisioned_share:.3%} short for "
                f"{closest.instance_hours_vs_oracle:.3f} x oracle. Raise MaxSize or lower the goal."
            )
            return "\n".join(lines)
        point = self.chosen
        lines.append(
            f"  cheapest setting that met it: {point.setting}: {point.under_provisioned_share:.3%} short "
            f"for {point.instance_hours_vs_oracle:.3f} x oracle's instance-hours"
        )
        if self.default is not None:
            change = point.instance_hours_vs_oracle / self.default.instance_hours_vs_oracle - 1
            lines.append(
                f"  the defaults ({self.default.setting}): {self.default.under_provisioned_share:.3%} short "
                f"for {self.default.instance_hours_vs_oracle:.3f} x oracle ({change:+.1%} instance-hours "
                "with the setting above)"
            )
        lines.append(f"  deploy it: sam deploy --parameter-overrides {self.overrides()}")
        lines.append(
            "  chosen on the days it is judged on: leave a margin under the shortfall you can bear, "
            "and run it again as the history grows"
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "goal_under_provisioned_share": self.goal_share,
            "chosen": asdict(self.chosen) if self.chosen is not None else None,
            "least_short": asdict(self.least_short),
            "parameter_overrides": self.overrides(),
        }


def tune(
    sweep: Sweep, goal_share: float, capacity_per_instance: float, base_target_cpu_percent: float
) -> Tuning:
    """The cheapest of ours' simulated settings short at most `goal_share` of minutes."""
    if not 0.0 <= goal_share < 1.0:
        raise ValueError(f"the shortfall goal must be in [0, 1), not {goal_share!r}")
    ours = [point for point in sweep.points if point.strategy == OURS]
    if not ours:
        raise ValueError("the sweep ran no setting of ours (no model was trained: too little history)")
    # The nightly replay's rule (`shortfall_goal.cheapest_meeting`), over the sweep's points.
    chosen, least_short = cheapest_meeting(
        ours, goal_share, lambda p: p.under_provisioned_share, lambda p: p.instance_hours_vs_oracle
    )
    return Tuning(
        goal_share, chosen, least_short, sweep.ours(), capacity_per_instance, base_target_cpu_percent
    )
