"""The knob sweep and its frontier: re-sizing is exact, frontiers and equal-shortfall reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.frontier import (
    SWEPT,
    SweepPoint,
    _recording_trainer,
    cost_at_share,
    pareto,
    quantile_uppers,
    share_at_cost,
)
from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.peers import PEERS
from saleor_scaling.backtest.runner import prepare_trace, run_backtest
from saleor_scaling.backtest.simulator import TargetTracking, simulate
from saleor_scaling.backtest.walkforward import walk_forward
from saleor_scaling.model import ForecastModel
from tests.backtest.helpers import small_config, synthetic_trace


def point(share: float, cost: float, strategy: str = "s") -> SweepPoint:
    return SweepPoint(strategy, "k", 0.0, int(share * 1000), share, cost * 100, cost)


def test_quantile_uppers_reproduce_the_walk_forward_sizing_at_its_quantile() -> None:
    config = small_config(days=4.0)
    trace = prepare_trace(synthetic_trace(4.0, seed=2), config)
    group = config.group_settings()
    reactive = simulate(trace.demand, group, TargetTracking(config.target_tracking_settings(False)))
    history = metric_history(trace.start, reactive, group)
    models: list[ForecastModel] = []
    forest = walk_forward(history, config.walk_forward_settings("UTC"), _recording_trainer(models))
    assert models, "the synthetic trace must train at least one night"
    q = config.policy.headroom_quantile
    uppers = quantile_uppers(forest, models, (q, 0.95))
    assert np.array_equal(uppers[q], forest.upper, equal_nan=True)
    served = np.isfinite(forest.upper)
    assert np.all(uppers[0.95][served] >= uppers[q][served])
    assert np.any(uppers[0.95][served] > uppers[q][served])


def test_pareto_keeps_only_undominated_points_by_rising_cost() -> None:
    points = [point(0.10, 1.0), point(0.05, 1.2), point(0.06, 1.3), point(0.02, 1.5), point(0.10, 1.1)]
    front = pareto(points)
    assert [(p.under_provisioned_share, p.instance_hours_vs_oracle) for p in front] == [
        (0.10, 1.0),
        (0.05, 1.2),
        (0.02, 1.5),
    ]


def test_equal_shortfall_interpolates_along_the_frontier_and_says_when_it_cannot() -> None:
    front = pareto([point(0.10, 1.0), point(0.05, 1.2), point(0.02, 1.5)])
    assert cost_at_share(front, 0.05) == pytest.approx(1.2)
    assert cost_at_share(front, 0.035) == pytest.approx(1.35)
    assert cost_at_share(front, 0.2) == pytest.approx(1.0)
    assert cost_at_share(front, 0.01) is None  # never that rarely short in the sweep
    assert share_at_cost(front, 1.1) == pytest.approx(0.075)
    assert share_at_cost(front, 0.9) is None  # every setting costs more
    assert share_at_cost(front, 1.5) == pytest.approx(0.02)


def test_the_report_json_and_series_hold_every_peer() -> None:
    config = small_config(days=4.0)
    report = run_backtest(synthetic_trace(4.0, seed=4), config)
    for name in PEERS:
        assert name in report.figures
        assert name in report.full_span
        assert name in report.series
        assert report.figures[name].minutes == report.figures["reactive"].minutes
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert set(PEERS) <= set(data["figures"])
    assert data["config"]["peers"]["reactive_lower_cpu_percent"] == 50.0
    table = report.table()
    assert "AWS perfect-hour + reactive" in table
    assert "Crane EHPA DSP + reactive" in table
    # The lower target buys capacity: never cheaper than target tracking at 70 %.
    assert report.figures["reactive-lower"].instance_hours >= report.figures["reactive"].instance_hours


def test_the_sweep_runs_every_knob_and_draws_the_frontier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = synthetic_trace(4.0, seed=6)
    path = tmp_path / "trace.csv"
    stamps = [datetime.fromtimestamp(trace.start + 60 * i, UTC) for i in range(len(trace.demand))]
    rows = "".join(
        f"{stamp:%Y-%m-%d %H:%M:%S},{round(v)}\n" for stamp, v in zip(stamps, trace.demand, strict=True)
    )
    path.write_text("minute,count\n" + rows)
    out_json, out_png = tmp_path / "sweep.json", tmp_path / "frontier.png"
    args = [str(path), "--sweep", "--quiet", "--json", str(out_json), "--plot", str(out_png)]
    args += ["--n-estimators", "5", "--max-depth", "6", "--min-history-days", "2", "--holdout-days", "1"]
    args += ["--training-window-days", "3"]
    assert main(args) == 0
    data = json.loads(out_json.read_text())
    # The sweep says what it did to the counts, as the backtest's header does.
    scaled = "so that the 99.9th percentile of 5-minute demand needs 8 instances (--peak-instances 8; "
    assert data["scaling"].startswith("counts scaled x")
    assert data["scaling"].endswith(scaled + "--scale 1 keeps the counts as recorded)")
    assert capsys.readouterr().out.splitlines()[0].endswith(data["scaling"])
    strategies = {p["strategy"] for p in data["points"]}
    assert strategies == set(SWEPT)
    defaults = [p for p in data["points"] if p["default"]]
    assert sorted(p["strategy"] for p in defaults) == sorted(SWEPT)
    ours = next(row for row in data["equal_shortfall"] if row["strategy"] == "predictive")
    assert ours["instance_hours_vs_oracle_at_our_shortfall"] == pytest.approx(
        ours["default_instance_hours_vs_oracle"]
    )
    assert out_png.stat().st_size > 20_000
