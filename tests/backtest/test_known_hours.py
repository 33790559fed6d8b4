"""The known-hours reference (`--sweep --known-hours`): ours' controller fed what AWS
perfect-hour knows, so the sweep can say whether knowing the hour or scaling explains
where AWS perfect-hour is cheaper. A reference, never a peer that beats ours."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.frontier import (
    KNOWN_HOURS,
    LEVEL_REFERENCE,
    SWEPT,
    Sweep,
    SweepPoint,
    cheaper_than_ours,
    equal_shortfall,
    frontier_series,
    frontier_table,
    known_hour_sizing,
    render_sweep,
    run_sweep,
)
from tests.backtest.helpers import small_config, synthetic_trace

HALF_PAST_MIDNIGHT = int(datetime(2026, 3, 2, 0, 30, tzinfo=UTC).timestamp())


def test_each_anchor_is_sized_from_the_true_mean_of_its_target_steps_utc_hour() -> None:
    # Minutes 0-29: the half hour before the first whole UTC hour; 30-89: the hour of
    # 01:00 (10 a minute); 90-149: 02:00 (40, one minute unknown); 150-179: half an hour.
    demand = np.concatenate([np.full(30, 5.0), np.full(60, 10.0), np.full(60, 40.0), np.full(30, 7.0)])
    demand[100] = np.nan
    served = np.ones(36, dtype=bool)
    served[20] = False
    sizing = known_hour_sizing(demand, HALF_PAST_MIDNIGHT, served, horizon_steps=3)
    # Anchor a sizes for its target step a + 3, starting at minute 5 (a + 3).
    assert np.isnan(sizing[:3]).all()  # targets before 00:30 + 30 minutes, no whole hour
    assert sizing[3].tolist() == 10.0  # target minute 30: the 01:00 hour
    assert sizing[14].tolist() == 10.0  # target minute 85, still in it
    assert sizing[15].tolist() == 40.0  # target minute 90: the 02:00 hour, its known minutes
    assert np.isnan(sizing[20])  # not served: no night's model
    assert sizing[26].tolist() == 40.0  # target minute 145
    assert np.isnan(sizing[27:]).all()  # the last half hour is no whole hour


def test_no_whole_hour_sizes_nothing() -> None:
    sizing = known_hour_sizing(np.full(40, 9.0), HALF_PAST_MIDNIGHT, np.ones(8, dtype=bool), 3)
    assert np.isnan(sizing).all()


def test_the_reference_is_swept_over_ours_knobs_and_changes_no_other_point() -> None:
    trace = synthetic_trace(4.0, seed=3)
    config = small_config(workers=1)
    plain = run_sweep(trace, config)
    with_reference = run_sweep(trace, config, known_hours=True)
    reference = [p for p in with_reference.points if p.strategy == KNOWN_HOURS]
    knobs = sorted(
        (p.value, p.target_cpu_percent, p.scale_in_stabilization_minutes, p.max_scale_in_step)
        for p in reference
    )
    assert knobs == sorted(
        (m, cpu, window, step)
        for m in (1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.5)
        for cpu in (90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0)
        for window in (30, 10)
        for step in (1, 0)
    )
    assert {p.knob for p in reference} == {"hour_mean_multiple"}
    assert not any(p.default for p in reference)
    # Added beside the strategies, never in their place.
    assert [p for p in with_reference.points if p.strategy != KNOWN_HOURS] == plain.points
    # Sized from the hour, the reference moves with its multiple: more of it is dearer.
    by_multiple = {
        p.value: p
        for p in reference
        if (p.target_cpu_percent, p.scale_in_stabilization_minutes) == (70.0, 30) and p.max_scale_in_step == 1
    }
    assert by_multiple[2.5].instance_hours > by_multiple[1.0].instance_hours
    assert by_multiple[2.5].under_provisioned_minutes <= by_multiple[1.0].under_provisioned_minutes
    rows = [row.strategy for row in frontier_table(with_reference)]
    assert rows == [*SWEPT, KNOWN_HOURS, LEVEL_REFERENCE]
    assert [row.strategy for row in equal_shortfall(with_reference)] == [*SWEPT, KNOWN_HOURS]


def reference_sweep() -> Sweep:
    """AWS perfect-hour cheaper than ours at 2 %; the known-hours reference cheaper still."""
    points = [
        SweepPoint("predictive", "headroom_quantile", 0.6, 30, 0.05, 110.0, 1.10, True, 70.0, 30, 1),
        SweepPoint("predictive", "headroom_quantile", 0.9, 6, 0.01, 130.0, 1.30, False, 70.0, 30, 1),
        SweepPoint("aws-predictive-perfect", "target_ratio", 1.0, 12, 0.02, 115.0, 1.15, True),
        SweepPoint(KNOWN_HOURS, "hour_mean_multiple", 1.5, 12, 0.02, 110.0, 1.10, False, 70.0, 10, 0),
        SweepPoint(KNOWN_HOURS, "hour_mean_multiple", 2.0, 1, 0.001, 150.0, 1.50, False, 70.0, 10, 0),
    ]
    return Sweep("hand", 1.0, 1440, 100.0, points, [])


def test_the_reference_never_counts_as_a_peer_and_says_what_knowing_the_hour_is_worth() -> None:
    sweep = reference_sweep()
    # The reference is cheaper than ours from 0.1 % to 5 %: no loss of ours, only AWS's.
    assert [(loss.strategy, loss.from_share, loss.to_share) for loss in cheaper_than_ours(sweep)] == [
        ("aws-predictive-perfect", 0.02, 0.02)
    ]
    lines = render_sweep(sweep).splitlines()
    assert "  AWS perfect-hour + reactive at 2.00%: 1.1500 against 1.2500, 8.00% cheaper" in lines
    assert (
        "  ours fed each hour's mean (reference) at 2.00%: 1.1000, 4.35% cheaper than "
        "AWS perfect-hour + reactive with the same knowledge" in lines
    )
    assert any(
        line.startswith(
            "ours fed each hour's mean (reference)hour_mean_multiple=1.5, cpu=70, window=10, step=0"
        )
        for line in lines
    )
    series = [s for s in frontier_series(sweep) if s.strategy == KNOWN_HOURS]
    assert [(s.label, s.dashed, len(s.points)) for s in series] == [
        ("ours fed each hour's mean (reference): over all ours' knobs", True, 2)
    ]


def test_without_the_reference_the_render_says_nothing_of_it() -> None:
    sweep = reference_sweep()
    sweep.points = [p for p in sweep.points if p.strategy != KNOWN_HOURS]
    text = render_sweep(sweep)
    assert "each hour's mean" not in text
    assert "  AWS perfect-hour + reactive at 2.00%: 1.1500 against 1.2500, 8.00% cheaper" in text.splitlines()


def test_the_reference_needs_the_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before any trace is read: the file need not exist.
    with pytest.raises(SystemExit) as exit_:
        main(["/nonexistent/trace.csv", "--known-hours"])
    assert exit_.value.code == 2
    assert "--known-hours is a reference of --sweep: add --sweep" in capsys.readouterr().err


def test_a_reference_dearer_than_aws_perfect_hour_is_called_dearer() -> None:
    sweep = reference_sweep()
    sweep.points[3] = SweepPoint(
        KNOWN_HOURS, "hour_mean_multiple", 1.5, 12, 0.02, 120.0, 1.20, False, 70.0, 10, 0
    )
    assert (
        "  ours fed each hour's mean (reference) at 2.00%: 1.2000, 4.35% dearer than "
        "AWS perfect-hour + reactive with the same knowledge" in render_sweep(sweep).splitlines()
    )
