"""The command: --help, and a tiny run that writes the table, the JSON and the PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from saleor_scaling.backtest.cli import main
from saleor_scaling.backtest.peers import PEERS
from tests.backtest.helpers import synthetic_trace


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--json", "--plot", "--boot-delay", "--headroom-quantile", "--peak-instances"):
        assert flag in out


def test_module_entry_point_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "saleor_scaling.backtest", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "saleor-backtest" in done.stdout


def write_trace(path: Path, days: float) -> Path:
    trace = synthetic_trace(days, seed=2)
    stamps = trace.start + 60 * np.arange(trace.minutes)
    lines = ["minute,count"]
    from datetime import UTC, datetime

    for stamp, count in zip(stamps.tolist(), trace.demand.tolist(), strict=True):
        lines.append(f"{datetime.fromtimestamp(stamp, UTC):%Y-%m-%d %H:%M:%S},{round(count)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tiny_run_writes_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = write_trace(tmp_path / "tiny.csv", 4)
    out_json, out_png = tmp_path / "out" / "report.json", tmp_path / "out" / "report.png"
    code = main(
        [
            str(trace),
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--n-estimators",
            "5",
            "--max-depth",
            "6",
            "--min-history-days",
            "2",
            "--holdout-days",
            "1",
            "--training-window-days",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "predictive RF + reactive" in table
    assert "oracle" in table
    report = json.loads(out_json.read_text())
    assert set(report["figures"]) == {"reactive", "predictive", "seasonal-naive", "oracle", *PEERS}
    for figures in report["figures"].values():
        assert 0 <= figures["under_provisioned_share"] <= 1
        assert figures["instance_hours"] > 0
    assert report["figures"]["oracle"]["instance_hours_vs_oracle"] == 1.0
    assert report["walk_forward"]["nights_trained"] >= 1
    assert report["figures"]["predictive"]["forecast"]["rows"] > 0
    assert {check["name"] for check in report["targets"]} >= {"forecast MAE < seasonal-naive MAE"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out_png.stat().st_size > 20_000


def test_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-trace", "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["no-such-trace", "--strategies", "magic"]) == 2


def test_the_header_states_the_scaling_that_was_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = write_trace(tmp_path / "shop.csv", 2)
    quick = ["--strategies", "reactive,oracle", "--quiet"]
    assert main([str(trace), *quick, "--scale", "1"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    # Before: "scaled x1 so the 99.9th percentile of 5-minute demand needs 8 instances".
    assert header.endswith("of minutes known, counts as recorded (scale 1)"), header
    assert main([str(trace), *quick, "--scale", "2.5"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith("of minutes known, counts multiplied by 2.5 (--scale 2.5)"), header
    assert main([str(trace), *quick, "--peak-instances", "6"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "counts scaled x" in header
    assert header.endswith(
        "so that the 99.9th percentile of 5-minute demand needs 6 instances "
        "(--peak-instances 6; --scale 1 keeps the counts as recorded)"
    ), header


def test_too_short_a_trace_says_why_predictive_equals_reactive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = write_trace(tmp_path / "week.csv", 4)
    assert (
        main([str(trace), "--strategies", "reactive,predictive,oracle", "--n-estimators", "5", "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "Note: No nightly model was trained: the trace has 4.0 days, the first model needs 9 days of "
        "history (MIN_HISTORY_DAYS, 75 % of them known), so predictive ran as reactive alone"
    ) in out
