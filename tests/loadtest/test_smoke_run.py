"""Locust runs headless against a stand-in Saleor on 127.0.0.1: requests are made, and
the only failures are the ones the stand-in was told to produce."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.loadtest.standin import SEARCH_FAILURE, standin_saleor

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"


def test_headless_run_against_a_standin(tmp_path: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    locust = Path(sys.executable).with_name("locust")
    prefix = tmp_path / "smoke"
    with standin_saleor(SCHEMA) as url:
        completed = subprocess.run(
            [
                str(locust),
                "-f",
                "loadtest/locustfile.py",
                "--headless",
                "-u",
                "8",
                "-r",
                "8",
                "-t",
                "6s",
                "--host",
                url,
                "--csv",
                str(prefix),
                "--only-summary",
                "--stop-timeout",
                "2",
            ],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO_ROOT),
                "SHOPPER_THINK_SECONDS": "0.05,0.2",
                "LOAD_SHAPE": "",
            },
            capture_output=True,
            text=True,
            timeout=90,
        )
    # Locust exits 1 when any request failed, which this run is built to cause.
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    with open(f"{prefix}_stats.csv", newline="") as handle:
        stats = {row["Name"]: row for row in csv.DictReader(handle) if row["Name"] != "Aggregated"}
    with open(f"{prefix}_failures.csv", newline="") as handle:
        failures = list(csv.DictReader(handle))

    for operation in (
        "Channels",
        "ProductList",
        "Categories",
        "ProductDetails",
        "SearchProducts",
        "CheckoutCreate",
    ):
        assert int(stats[operation]["Request Count"]) > 0, operation
    assert int(stats["ProductList"]["Request Count"]) > 20
    assert {row["Name"] for row in failures} == {"SearchProducts"}
    assert all(SEARCH_FAILURE in row["Error"] for row in failures)
    assert int(stats["SearchProducts"]["Failure Count"]) == int(stats["SearchProducts"]["Request Count"])
    for name, row in stats.items():
        if name != "SearchProducts":
            assert int(row["Failure Count"]) == 0, (name, row["Failure Count"])
