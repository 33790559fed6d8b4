"""Sizing the warm pool from the forecast (issue 25, docs/infrastructure.md "Warm pool").

A scale-out takes prepared instances from the pool first, and each one taken is replaced by
a whole boot into the pool: the pool must already hold what the rises of the coming hour
may take above the desired capacity predict sets. The forecast reaches one horizon only, so
the coming hour's highest demand is read from the same hour yesterday and last week (the
history predict reads for its features holds both), sized up by the forecast's headroom,
and never below the forecast itself.

The size is bounded by the operator (WARM_POOL_MIN_SIZE, WARM_POOL_MAX_SIZE) and by the
group's MaxSize (an instance the group can never take into service is kept for nothing).
The pool changes neither the desired capacity nor MinSize: it cannot keep the group at
a peak, only pre-initialised instances that are stopped (or hibernated, or running) until
a scale-out takes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from saleor_scaling.features import STEPS_PER_DAY, STEPS_PER_WEEK
from saleor_scaling.series import FloatArray
from saleor_scaling.settings import PoolBounds

__all__ = [
    "POOL_PLAN_STEPS",
    "PoolBounds",
    "PoolConfiguration",
    "PoolDecision",
    "coming_peak_demand",
    "size_pool",
]

POOL_PLAN_STEPS = 12
"""The coming hour, in 5-minute steps after the anchor bucket: longer than any boot into
the pool, so that an instance taken is replaced before the hour's rises need it again."""


@dataclass(frozen=True)
class PoolConfiguration:
    """The group's warm pool as DescribeWarmPool returns it."""

    state: str
    min_size: int
    max_prepared_capacity: int
    """-1: AWS's default, MaxSize minus the desired capacity."""
    reuse_on_scale_in: bool

    @property
    def absolute_size(self) -> int | None:
        """AWS keeps exactly MinSize only when MaxGroupPreparedCapacity equals it."""
        return self.min_size if self.min_size == self.max_prepared_capacity else None


@dataclass(frozen=True)
class PoolDecision:
    size: int
    needed: int
    """The instances the coming hour needs at most (the forecast's own need included)."""
    target: int
    current: PoolConfiguration
    clamps: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return self.current.absolute_size != self.size

    @property
    def explanation(self) -> str:
        why = f"(the coming hour needs up to {self.needed}, desired {self.target})"
        if not self.changes:
            return f"warm pool holds {self.size} {why}"
        before = self.current.absolute_size
        shown = f"at least {self.current.min_size}" if before is None else str(before)
        return f"warm pool {shown} -> {self.size} {why}"


def coming_peak_demand(demand: FloatArray, index: int, steps: int) -> float:
    """The highest demand of the `steps` steps after `index`, one day and one week earlier
    (NaN where neither is known)."""
    seen = [
        demand[index + step - period]
        for period in (STEPS_PER_DAY, STEPS_PER_WEEK)
        for step in range(1, steps + 1)
        if 0 <= index + step - period < len(demand)
    ]
    known = [float(value) for value in seen if not np.isnan(value)]
    return max(known) if known else math.nan


def size_pool(
    needed: int, target: int, group_max: int, current: PoolConfiguration, bounds: PoolBounds
) -> PoolDecision:
    """Enough prepared instances for `needed` above `target`, within the group's MaxSize
    and the operator's bounds (the operator's minimum last: the template's pool keeps it
    whatever predict says)."""
    clamps: list[str] = []
    size = max(0, needed - target)
    room = max(0, group_max - target)
    if size > room:
        clamps.append(f"limited from {size} to {room}, MaxSize {group_max} minus desired {target}")
        size = room
    if size > bounds.max_size:
        clamps.append(f"limited from {size} to WARM_POOL_MAX_SIZE {bounds.max_size}")
        size = bounds.max_size
    if size < bounds.min_size:
        clamps.append(f"raised from {size} to WARM_POOL_MIN_SIZE {bounds.min_size}")
        size = bounds.min_size
    return PoolDecision(size, needed, target, current, tuple(clamps))
