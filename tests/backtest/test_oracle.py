"""The oracle is the cheapest schedule with no under-provisioned minute: checked against an
exhaustive search over every launch and termination on small hand-made traces."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from saleor_scaling.backtest.oracle import instances_needed, oracle_schedule
from saleor_scaling.series import FloatArray
from saleor_scaling.simulation.simulator import GroupSettings


def brute_force_cost(needed: list[int], delay: int, max_size: int) -> int:
    """Minimum instance-minutes billed over the needed (> 0) minutes, searching every
    schedule: each minute any instances may be terminated and any launched; an instance
    launched at minute l serves from l + delay; the group may start with any number of
    instances already serving."""
    minutes = len(needed)

    @functools.cache
    def best(t: int, serving: int, pending: tuple[int, ...]) -> float:
        # pending[a]: instances launched a minutes before t that are not serving yet.
        if t == minutes:
            return 0
        result = math.inf
        for launch in range(max_size + 1):
            ages = (launch, *pending)  # age 0 .. delay-1
            now_serving = serving + (launch if delay == 0 else 0)
            booting = ages if delay > 0 else ()
            for keep_serving in range(now_serving + 1):
                for kept in itertools.product(*(range(count + 1) for count in booting)):
                    total = keep_serving + sum(kept)
                    if total > max_size or (needed[t] > 0 and keep_serving < needed[t]):
                        continue
                    cost = total if needed[t] > 0 else 0
                    # Age everything by a minute; those reaching `delay` start serving.
                    if delay > 0:
                        arriving = kept[-1] if len(kept) == delay else 0
                        next_pending = tuple(kept[: delay - 1]) if delay > 1 else ()
                        next_pending = next_pending + (0,) * (delay - 1 - len(next_pending))
                        next_serving = keep_serving + arriving
                    else:
                        next_pending, next_serving = (), keep_serving
                    result = min(result, cost + best(t + 1, next_serving, next_pending))
        return result

    empty = (0,) * max(delay - 1, 0)
    return int(min(best(0, start, empty) for start in range(max_size + 1)))


def settings(delay: int, max_size: int = 3) -> GroupSettings:
    return GroupSettings(min_size=1, max_size=max_size, boot_delay_minutes=delay, capacity_per_instance=100.0)


def demand_for(needed: list[int]) -> FloatArray:
    """Demand that needs exactly these instances (0 = unknown minute)."""
    return np.array([n * 100.0 - 30.0 if n else np.nan for n in needed])


HAND_MADE = [
    # A burst after a quiet spell: relaunching beats staying up for a long gap...
    ([1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2], 2),
    # ...but a gap shorter than the boot delay must be bridged.
    ([2, 2, 1, 2, 2, 1, 1, 1, 3, 1], 3),
    # A gap in the trace (0) costs nothing, so instances ride through it.
    ([2, 2, 0, 0, 0, 0, 2, 1, 1, 3], 2),
    # A need in the first minutes can only be met by instances the group starts with.
    ([1, 3, 1, 1, 1, 1, 1, 2, 2, 2], 2),
    ([1, 2, 3, 2, 1, 2, 3, 2, 1, 1], 1),
    ([3, 1, 1, 1, 1, 1, 3, 1, 1, 1], 0),
]


@pytest.mark.parametrize(("needed", "delay"), HAND_MADE)
def test_oracle_cost_equals_exhaustive_minimum(needed: list[int], delay: int) -> None:
    schedule = oracle_schedule(demand_for(needed), settings(delay))
    assert schedule.cost == brute_force_cost(needed, delay, 3)


def test_oracle_on_random_small_traces_equals_exhaustive_minimum() -> None:
    rng = np.random.default_rng(7)
    for _ in range(12):
        delay = int(rng.integers(0, 4))
        needed = [int(v) for v in rng.integers(0, 4, size=9)]
        needed = [max(v, 1) if rng.random() > 0.15 else 0 for v in needed]
        schedule = oracle_schedule(demand_for(needed), settings(delay))
        assert schedule.cost == brute_force_cost(needed, delay, 3), (needed, delay)


def test_oracle_never_under_provisions_and_boots_in_time() -> None:
    rng = np.random.default_rng(3)
    demand = rng.gamma(2.0, 150.0, size=2000)
    demand[500:620] = np.nan
    group = GroupSettings(min_size=1, max_size=10, boot_delay_minutes=5, capacity_per_instance=100.0)
    schedule = oracle_schedule(demand, group)
    known = np.isfinite(demand)
    needed = instances_needed(demand, group)
    assert np.all(schedule.serving[known] >= needed[known])
    assert np.all(schedule.billed >= schedule.serving)
    assert schedule.billed.max() <= group.max_size
    # Every instance that starts serving was billed for the boot delay before.
    booting = schedule.billed - schedule.serving
    assert booting.sum() == schedule.launches * group.boot_delay_minutes


def test_a_minute_above_max_size_is_capped_not_impossible() -> None:
    group = GroupSettings(min_size=1, max_size=2, boot_delay_minutes=1, capacity_per_instance=100.0)
    schedule = oracle_schedule(np.array([50.0, 500.0, 50.0]), group)
    assert schedule.serving.tolist() == [2, 2, 1]
