"""Minutes beyond MaxSize are counted apart for every strategy (issue 13, part 2).

A minute whose demand needs more than MaxSize instances is short for everyone; it is why
the oracle is ever under-provisioned, and the table must say so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.backtest.oracle import oracle_schedule
from saleor_scaling.backtest.report import strategy_figures
from saleor_scaling.backtest.runner import run_backtest
from saleor_scaling.simulation.simulator import GroupSettings
from tests.backtest.helpers import small_config, synthetic_trace

CAPACITY = 1000.0


@st.composite
def demand_and_group(draw: st.DrawFn) -> tuple[np.ndarray, GroupSettings]:
    max_size = draw(st.integers(1, 6))
    group = GroupSettings(min_size=1, max_size=max_size, boot_delay_minutes=draw(st.integers(0, 6)))
    values = draw(
        st.lists(
            st.one_of(st.floats(0.0, (max_size + 3) * CAPACITY), st.just(float("nan"))),
            min_size=1,
            max_size=120,
        )
    )
    return np.array(values), group


@settings(max_examples=300, deadline=None)
@given(demand_and_group(), st.data())
def test_short_minutes_split_into_beyond_max_size_and_within_reach(
    case: tuple[np.ndarray, GroupSettings], data: st.DataObject
) -> None:
    demand, group = case
    serving = np.array(
        data.draw(st.lists(st.integers(0, group.max_size), min_size=len(demand), max_size=len(demand))),
        dtype=np.int64,
    )
    window = slice(0, len(demand))
    figures = strategy_figures("s", demand, serving, serving, 0, CAPACITY, window, max_size=group.max_size)
    known = np.isfinite(demand)
    beyond = int(np.sum(demand[known] > group.max_size * CAPACITY * (1 + 1e-9)))
    assert figures.beyond_max_size_minutes == beyond
    assert figures.beyond_max_size_minutes <= figures.under_provisioned_minutes
    if figures.minutes:
        within = (figures.under_provisioned_minutes - beyond) / figures.minutes
        assert figures.under_provisioned_within_reach_share == within
    # Without MaxSize nothing is counted apart.
    plain = strategy_figures("s", demand, serving, serving, 0, CAPACITY, window)
    assert plain.beyond_max_size_minutes == 0
    assert plain.under_provisioned_minutes == figures.under_provisioned_minutes


@settings(max_examples=300, deadline=None)
@given(demand_and_group())
def test_the_oracle_is_short_only_beyond_max_size(case: tuple[np.ndarray, GroupSettings]) -> None:
    demand, group = case
    oracle = oracle_schedule(demand, group)
    window = slice(0, len(demand))
    figures = strategy_figures(
        "oracle", demand, oracle.serving, oracle.billed, 0, CAPACITY, window, max_size=group.max_size
    )
    assert figures.under_provisioned_minutes == figures.beyond_max_size_minutes
    if figures.minutes:
        assert figures.under_provisioned_within_reach_share == 0.0


def test_table_and_json_count_them_for_every_strategy() -> None:
    trace = synthetic_trace(4, seed=3)
    demand = trace.demand.copy()
    flash = slice(3 * 1440 + 600, 3 * 1440 + 620)  # 20 minutes on the evaluated day
    config = small_config(scale_factor=1.0, peak_instances=1.0)
    demand[flash] = 15.0 * config.capacity_per_instance  # 15 instances, MaxSize is 10
    report = run_backtest(replace(trace, demand=demand), config)
    figures = report.to_json()["figures"]
    # every strategy the run has, the peers included
    assert set(figures) == set(config.strategies)
    assert {"reactive", "predictive", "seasonal-naive", "oracle", "crane-dsp"} <= set(figures)
    for name, fig in figures.items():
        assert fig["beyond_max_size_minutes"] == 20, name
        assert fig["under_provisioned_within_reach_share"] <= fig["under_provisioned_share"]
    oracle = report.figures["oracle"]
    assert oracle.under_provisioned_minutes == 20
    table = report.table()
    assert "beyond" in table.splitlines()[4]
    assert "MaxSize" in table.splitlines()[5]
    assert "short for every strategy, the oracle included" in table
    assert "20 minutes" in table
