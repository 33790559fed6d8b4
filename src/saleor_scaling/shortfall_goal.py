"""A shortfall goal the scaler meets by itself: the setting the nightly replay chose, as
the manifest carries it, and the quantile each predict run sizes for.

Retrain replays the held-out days through the simulator for a grid of HeadroomQuantile
values (`simulation.replay`) and writes the cheapest that met the operator's goal (or
the least short) into the manifest's `tuning` field. Whoever can write the bucket can
write that field, so predict trusts none of it: a block that is not exactly what retrain
writes, tuned for another goal, or holding a quantile outside HEADROOM_QUANTILE's range
or under TUNED_HEADROOM_QUANTILE_FLOOR is ignored whole, and the run sizes for
HeadroomQuantile as set, saying why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from saleor_scaling.settings import MAX_SHORTFALL_GOAL_PERCENT, PolicySettings, ShortfallGoal, quantile_range

MAX_REPLAY_DAYS = 14.0
"""HOLDOUT_DAYS' upper bound: a manifest claiming a longer replay was not written here."""
MAX_INSTANCE_HOURS_PER_DAY = 100 * 24.0
"""GROUP_MAX_SIZE's bound, all day."""


@dataclass(frozen=True)
class TunedSetting:
    """What the night's replay chose, as the manifest's `tuning` field holds it."""

    goal_share: float
    """The goal it was chosen for (0.01: 1 % of minutes short)."""
    headroom_quantile: float
    met: bool
    """False: no quantile of the grid met the goal; this one was the least short."""
    replay_short_share: float
    """The share of the replayed minutes it left short."""
    instance_hours_per_day: float
    """The group's instance-hours a day in the replay."""
    replay_days: float

    def to_manifest(self) -> dict[str, float | bool]:
        return asdict(self)

    def describe(self) -> str:
        goal = f"tuned nightly for a {self.goal_share:.2%} goal"
        replay = (
            f"replay of {self.replay_days:g} held-out days short {self.replay_short_share:.2%} of minutes "
            f"for {self.instance_hours_per_day:.1f} instance-hours a day"
        )
        if self.met:
            return f"{goal}: {replay}"
        return f"{goal}, which no quantile met: the least short, {replay}"


_FIELDS: dict[str, type] = {
    "goal_share": float,
    "headroom_quantile": float,
    "met": bool,
    "replay_short_share": float,
    "instance_hours_per_day": float,
    "replay_days": float,
}


def tuned_setting(raw: object, goal: ShortfallGoal) -> tuple[TunedSetting | None, str]:
    """The manifest's `tuning` field if every part of it can be trusted with this
    deployment's goal, else None and why (the whole block is then ignored)."""
    if not isinstance(raw, Mapping) or not raw:
        return None, "the model carries no tuning"
    if set(raw) != set(_FIELDS):
        return None, "the model's tuning is ignored: its fields are not the ones retrain writes"
    values: dict[str, float | bool] = {}
    for name, kind in _FIELDS.items():
        value = raw[name]
        if kind is bool:
            if not isinstance(value, bool):
                return None, f"the model's tuning is ignored: {name} is not true or false"
            values[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None, f"the model's tuning is ignored: {name} is not a finite number"
        values[name] = float(value)
    setting = TunedSetting(**values)  # type: ignore[arg-type]
    low, high = quantile_range()
    low = max(low, goal.quantile_floor)
    checks = (
        (0 < setting.goal_share <= MAX_SHORTFALL_GOAL_PERCENT / 100, "goal_share"),
        (low <= setting.headroom_quantile <= high, "headroom_quantile"),
        (0 <= setting.replay_short_share <= 1, "replay_short_share"),
        (0 <= setting.instance_hours_per_day <= MAX_INSTANCE_HOURS_PER_DAY, "instance_hours_per_day"),
        (0 < setting.replay_days <= MAX_REPLAY_DAYS, "replay_days"),
    )
    for passed, name in checks:
        if not passed:
            bound = f" (allowed [{low:g}, {high:g}])" if name == "headroom_quantile" else ""
            return None, f"the model's tuning is ignored: {name} {values[name]!r} is out of bounds{bound}"
    if not math.isclose(setting.goal_share, goal.share, rel_tol=1e-9, abs_tol=1e-12):
        return None, (
            f"the model's tuning was for a {setting.goal_share:.2%} goal, not TargetShortfallPercent "
            f"{goal.percent:g}: ignored until tonight's retrain"
        )
    return setting, ""


@dataclass(frozen=True)
class QuantileChoice:
    """The quantile a predict run sizes for, and why."""

    value: float
    tuned: TunedSetting | None
    why: str

    def record(self) -> dict[str, object]:
        return {
            "value": self.value,
            "source": "tuned" if self.tuned is not None else "as set",
            "why": self.why,
        }


def quantile_for_run(raw_tuning: object, policy: PolicySettings, goal: ShortfallGoal) -> QuantileChoice:
    """The model's tuned quantile where the goal is on and the tuning is trustworthy,
    HeadroomQuantile as set otherwise (exactly as before tuning existed)."""
    as_set = f"as set: HeadroomQuantile {policy.headroom_quantile:g}"
    if not goal.on:
        return QuantileChoice(policy.headroom_quantile, None, f"{as_set} (TargetShortfallPercent off)")
    setting, why_not = tuned_setting(raw_tuning, goal)
    if setting is None:
        return QuantileChoice(policy.headroom_quantile, None, f"{as_set} ({why_not})")
    return QuantileChoice(setting.headroom_quantile, setting, setting.describe())


def cheapest_meeting[Point](
    points: Sequence[Point],
    goal_share: float,
    short: Callable[[Point], float],
    cost: Callable[[Point], float],
) -> tuple[Point | None, Point]:
    """The cheapest point short at most `goal_share` (None: none was), and the least short
    (cheapest among equals): the rule the nightly replay and `--target-shortfall` share."""
    if not points:
        raise ValueError("no setting to choose from")
    meeting = [point for point in points if short(point) <= goal_share]
    chosen = min(meeting, key=lambda p: (cost(p), short(p)), default=None)
    least_short = min(points, key=lambda p: (short(p), cost(p)))
    return chosen, least_short
