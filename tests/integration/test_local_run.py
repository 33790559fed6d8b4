"""The README's main command, shortened: the real handlers on a real trace against
emulated AWS, in closed loop with the simulated group."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from saleor_scaling.local import run
from tests.conftest import require_trace


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """The local run sets the emulated shop's variables process-wide, as a Lambda would."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_local_run_retrains_then_decides_every_five_minutes(tmp_path, capsys):
    require_trace("nab_elb_request_count_8c0756.csv")
    code = run.main(
        [
            "--trace",
            "nab-elb",
            "--history-days",
            "10",
            "--replay-hours",
            "1",
            "--no-backtest",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "retrain" in out
    assert ": promoted:" in out
    decision_lines = [line for line in out.splitlines() if line.startswith("2026-11-24 ")]
    assert len(decision_lines) == 11  # every 5 minutes after the 03:15 retrain, for an hour
    assert "predictive + reactive (real handlers)" in out
    records = [
        json.loads(line)
        for line in (tmp_path / "lambda-logs.jsonl").read_text().splitlines()
        if line.startswith("{")
    ]
    decisions = [
        r["decision"] for r in records if isinstance(r.get("decision"), dict) and "status" in r["decision"]
    ]
    assert len(decisions) == 11
    assert all(d["model"].get("model_version_id") for d in decisions if d["status"] != "fallback")


def test_local_run_refuses_an_unknown_trace(tmp_path, capsys):
    assert run.main(["--trace", "no-such-trace", "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_local_run_refuses_a_trace_coarser_than_a_bucket(tmp_path, capsys):
    """Spread over minutes, a 30-minute step would reach emulated CloudWatch before it
    closed: the replay would show predict the future, so it is refused with the way out."""
    trace = tmp_path / "half-hours.csv"
    rows = [
        f"2024-01-01 {hour:02d}:{minute:02d}:00,{3000 + hour}" for hour in range(24) for minute in (0, 30)
    ]
    trace.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert run.main(["--trace", str(trace), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "30-minute steps" in error
    assert "make backtest" in error
