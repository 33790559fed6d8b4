"""The hostile-input harness, as plain `pytest` (and so CI) runs it: each handler's
properties in one subprocess under the function's memory (tests/fuzz/limited_run.py),
many hypothesis examples per process, and a check that the limit is really in force.

`make fuzz` runs the same with SALEOR_FUZZ_PROFILE=fuzz: twenty times the examples, random.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.fuzz.limited_run import BASELINE_PREFIX

PREDICT_MEMORY_MB = 512  # template.yaml: PredictFunction MemorySize
RETRAIN_MEMORY_MB = 1024  # template.yaml: RetrainFunction MemorySize
SUBPROCESS_TIMEOUT_SECONDS = 3600


def run_limited(function: str, memory_mb: int, module: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.limited_run",
        "--memory-mb",
        str(memory_mb),
        "--function",
        function,
        "--",
        module,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:logging",
        "--show-capture=no",
        "-rfEs",
        "--tb=short",
        *extra,
    ]
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )


def report(completed: subprocess.CompletedProcess[str]) -> str:
    """The inner run's summary, the falsifying examples hypothesis printed, and the figures,
    without the handlers' JSON log lines."""
    lines = [
        line[:2000]
        for line in (completed.stdout + completed.stderr).splitlines()
        if not line.startswith("{") and line.strip()
    ]
    wanted = [
        line
        for line in lines
        if line.startswith(
            (BASELINE_PREFIX, "FAILED", "ERROR", "SKIPPED", "E   ", "E       Draw", "Falsifying")
        )
        or re.search(r"\d+ (passed|failed)", line)
    ]
    return "\n".join(wanted[-200:])


def assert_clean_exit(completed: subprocess.CompletedProcess[str]) -> None:
    print(report(completed))
    assert f"{BASELINE_PREFIX} address space with the emulated world built" in completed.stderr, (
        "the module never set the memory limit (harness.limit_memory)"
    )
    assert completed.returncode >= 0, f"the limited process was killed by signal {-completed.returncode}"
    assert completed.returncode == 0, report(completed)


@pytest.mark.slow
def test_predict_survives_hostile_inputs_within_its_memory():
    assert_clean_exit(run_limited("predict", PREDICT_MEMORY_MB, "tests/fuzz/hostile_predict.py"))


@pytest.mark.slow
def test_retrain_survives_hostile_inputs_within_its_memory():
    assert_clean_exit(run_limited("retrain", RETRAIN_MEMORY_MB, "tests/fuzz/hostile_retrain.py"))


def test_the_memory_limit_is_in_force():
    """The harness itself: under the limit, 400 MB of the 512 can be used and 600 MB
    cannot (a MemoryError, not a killed process)."""
    completed = run_limited("predict", PREDICT_MEMORY_MB, "tests/fuzz/limit_selfcheck.py")
    assert_clean_exit(completed)
    assert "2 passed" in completed.stdout
    assert f"{BASELINE_PREFIX} predict: address space after importing" in completed.stdout
    assert f"{BASELINE_PREFIX} address space with the emulated world built" in completed.stderr
