"""Shared fixtures: emulated AWS, synthetic shop traffic, the handlers as Lambda loads them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

from saleor_scaling.local.emulator import load_function
from saleor_scaling.local.synthetic import synthetic_history

__all__ = ["REPO_ROOT", "SHARED_DIR", "load_handler", "require_trace", "synthetic_history"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SALEOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
TRACES_DIR = SHARED_DIR / "traces"


def require_trace(name: str) -> Path:
    path = TRACES_DIR / name
    if not path.is_file():
        pytest.skip(f"shared trace {path} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    return path


@contextlib.contextmanager
def mock_account(patch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """A moto-backed AWS account for as long as the context lasts: fake credentials in the
    environment (through `patch`), so no boto3 client made inside reaches AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        patch.setenv(name, value)
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """A moto-backed AWS account; boto3 clients made inside talk to the emulator."""
    with mock_account(monkeypatch) as session:
        yield session


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py under a unique name, as Lambda would import it."""
    return load_function(function, REPO_ROOT / "functions")
