"""Shared fixtures: emulated AWS, synthetic shop traffic, the handlers as Lambda loads them."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import boto3
import numpy as np
import pytest
from moto import mock_aws

from saleor_scaling.series import Metric, MetricHistory

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SALEOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
TRACES_DIR = SHARED_DIR / "traces"


def require_trace(name: str) -> Path:
    path = TRACES_DIR / name
    if not path.is_file():
        pytest.skip(f"shared trace {path} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    return path


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """A moto-backed AWS account; boto3 clients made inside talk to the emulator."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1")


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py under a unique name, as Lambda would import it."""
    path = REPO_ROOT / "functions" / function / "app.py"
    name = f"{function}_app"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def synthetic_history(
    start: int,
    days: float,
    *,
    peak_per_minute: float = 4000.0,
    capacity_per_instance: float = 1000.0,
    target_cpu: float = 70.0,
    seed: int = 0,
) -> MetricHistory:
    """A shop's week: a daily cycle peaking in the evening, quieter weekends, noise, and the
    CPU and instance counts a fleet sized by a reactive policy would show."""
    steps = int(days * 288)
    rng = np.random.default_rng(seed)
    stamps = start + 300 * np.arange(steps)
    hour = (stamps % 86400) / 3600.0
    weekday = ((stamps // 86400) + 3) % 7
    daily = 0.55 + 0.45 * np.sin((hour - 14.0) / 24.0 * 2 * math.pi)
    weekly = np.where(weekday >= 5, 0.7, 1.0)
    demand = peak_per_minute * daily * weekly * rng.lognormal(0.0, 0.05, steps)
    in_service = np.maximum(1, np.ceil(demand / capacity_per_instance))
    cpu = np.clip(demand / in_service / capacity_per_instance * target_cpu, 1, 100)
    return MetricHistory(
        start=start,
        values={
            Metric.REQUESTS: demand * 5,
            Metric.RESPONSE_TIME: 0.08 + 0.1 * cpu / 100,
            Metric.ERRORS_5XX: np.zeros(steps),
            Metric.CPU: cpu,
            Metric.DESIRED: in_service.astype(float),
            Metric.IN_SERVICE: in_service.astype(float),
        },
    )
