"""The clairvoyant-level bound: free on a steady load, costly on pure noise, and blind to
the very step it sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saleor_scaling.backtest.bounds import (
    LevelBound,
    clairvoyant_level_bound,
    horizon_autocorrelation,
    surrounding_level,
)
from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.series import FloatArray
from saleor_scaling.simulation.simulator import GroupSettings

GROUP = GroupSettings(min_size=1, max_size=10, boot_delay_minutes=5)


def bound_for(demand: FloatArray, limit: float) -> LevelBound | None:
    oracle = oracle_schedule(demand, GROUP)
    return clairvoyant_level_bound(demand, GROUP, oracle.billed, limit, slice(0, len(demand)), 3)


def test_level_uses_the_future_but_never_the_step_itself() -> None:
    steps = np.array([1.0, 2.0, 100.0, 4.0, np.nan, 6.0])
    level = surrounding_level(steps, half_width_steps=1)
    np.testing.assert_allclose(level, [2.0, 50.5, 3.0, 100.0, 5.0, np.nan])  # a gap is no level
    assert math.isnan(surrounding_level(np.array([np.nan, 5.0, np.nan]), 1)[1])


def test_a_steady_load_costs_what_the_oracle_pays() -> None:
    demand = np.full(5 * 2000, 2500.0)
    bound = bound_for(demand, limit=0.01)
    assert bound is not None
    assert bound.under_provisioned_share == 0.0
    assert bound.instance_hours_vs_oracle == pytest.approx(1.0, abs=1e-6)


def test_pure_noise_cannot_be_sized_cheaply_from_its_level() -> None:
    rng = np.random.default_rng(0)
    steps = 2000
    noise = np.repeat(rng.lognormal(np.log(1500.0), 0.7, steps), 5)  # i.i.d. 5-minute steps
    bound = bound_for(noise, limit=0.05)
    assert bound is not None
    assert bound.under_provisioned_share <= 0.05
    assert bound.instance_hours_vs_oracle > 1.3
    assert abs(bound.horizon_autocorrelation) < 0.1
    # A smooth daily wave of the same mean is another matter.
    minutes = np.arange(steps * 5)
    wave = 1500.0 * (1.0 + 0.8 * np.sin(minutes / 1440.0 * 2 * np.pi))
    smooth = bound_for(wave, limit=0.05)
    assert smooth is not None
    assert smooth.instance_hours_vs_oracle < 1.1
    assert smooth.horizon_autocorrelation > 0.99
    assert bound.instance_hours_vs_oracle > smooth.instance_hours_vs_oracle


def test_unreachable_limit_gives_no_bound() -> None:
    demand = np.full(500, 20_000.0)  # twice what MaxSize serves, every minute
    assert bound_for(demand, limit=0.5) is None


def test_autocorrelation_of_a_constant_is_unknown_not_an_error() -> None:
    assert math.isnan(horizon_autocorrelation(np.full(100, 3.0), 3))
