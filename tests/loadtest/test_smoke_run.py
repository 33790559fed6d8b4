"""Locust runs headless against a stand-in Saleor on 127.0.0.1 (tests/loadtest/standin.py):
requests are made for the main operations, the only failures are the ones the stand-in
was told to produce, and the expected refusals (the anonymous channel list, an unpaid
checkoutComplete) are not failures."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.loadtest.conftest import locust_env
from tests.loadtest.standin import SEARCH_FAILURE, standin_saleor

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"
LOCUST = REPO_ROOT / ".venv" / "bin" / "locust"
FAST_SHOPPERS = {"SHOPPER_THINK_SECONDS": "0.05,0.2", "CHECKOUT_COMPLETE_SHARE": "1", "LOAD_SHAPE": ""}


@pytest.fixture
def standin():
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    if not LOCUST.is_file():
        pytest.skip(f"{LOCUST} is absent (make venv)")
    with standin_saleor(SCHEMA) as server:
        yield server


def run_locust(host: str, csv_prefix: Path, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [
            str(LOCUST),
            *("-f", "loadtest/locustfile.py", "--headless", "--host", host, "--csv", str(csv_prefix)),
            *("--only-summary", "--stop-timeout", "2", *options),
        ],
        cwd=REPO_ROOT,
        env=locust_env(PYTHONPATH=str(REPO_ROOT), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Locust exits 1 when any request failed, which the first run is built to cause.
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    return completed


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_headless_run_against_a_standin(standin, tmp_path: Path) -> None:
    prefix = tmp_path / "smoke"
    completed = run_locust(standin.url, prefix, "-u", "8", "-r", "8", "-t", "6s", **FAST_SHOPPERS)

    stats = {row["Name"]: row for row in read_csv(f"{prefix}_stats.csv") if row["Name"] != "Aggregated"}
    failures = read_csv(f"{prefix}_failures.csv")
    requests = {name: int(row["Request Count"]) for name, row in stats.items()}
    failed = {name: int(row["Failure Count"]) for name, row in stats.items()}

    # discovery: the channel list is refused to an anonymous shopper, the fallback answers
    assert requests["Channels"] >= 1
    assert requests["ChannelBySlug"] >= 1
    for operation in (
        "ProductList",
        "CategoryProducts",
        "ProductDetails",
        "SearchProducts",
        "CheckoutCreate",
        "CheckoutShippingAddressUpdate",
        "CheckoutDeliveryMethodUpdate",
        "CheckoutComplete",
    ):
        assert requests.get(operation, 0) > 0, operation
    assert requests["ProductList"] > 20
    # Locust names each request by operation: what the stand-in saw is what Locust reports
    assert set(standin.operations) == set(requests)

    # exactly the injected failure, with its message, and nothing else
    assert {row["Name"] for row in failures} == {"SearchProducts"}
    assert all(SEARCH_FAILURE in row["Error"] for row in failures)
    assert failed["SearchProducts"] == requests["SearchProducts"]
    assert {name for name, count in failed.items() if count} == {"SearchProducts"}
    # the unpaid checkoutComplete answers were counted as expected outcomes
    assert "checkoutComplete outcomes: CHECKOUT_NOT_FULLY_PAID" in completed.stderr


def test_a_load_shape_drives_the_run_and_ends_it(standin, tmp_path: Path) -> None:
    prefix = tmp_path / "step"
    env = {
        **FAST_SHOPPERS,
        "LOAD_SHAPE": "step",
        "PEAK_USERS": "4",
        "STEP_COUNT": "2",
        "DURATION_SECONDS": "4",
    }
    # no -t: the shape's tick() answering None is what stops the run
    completed = run_locust(f"{standin.url}/graphql/", prefix, **env)
    assert "Shape test updating to 2 users" in completed.stderr
    assert "Shape test updating to 4 users" in completed.stderr
    history = read_csv(f"{prefix}_stats_history.csv")
    user_counts = {int(row["User Count"]) for row in history if row["Name"] == "Aggregated"}
    assert {2, 4} <= user_counts
    assert max(user_counts) == 4
