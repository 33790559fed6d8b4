"""Locust runs headless against a stand-in Saleor on 127.0.0.1 (tests/loadtest/standin.py):
requests are made for the main operations, the only failures are the ones the stand-in
was told to produce, and the expected refusals (the anonymous channel list, an unpaid
checkoutComplete) are not failures.

The headless run ends when Locust's own statistics show every journey step, not after a
fixed number of seconds: on a loaded machine Locust's start-up alone can take most of a
short run, and a count of requests made in a fixed time measures the machine, not Locust.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.loadtest.conftest import locust_env
from tests.loadtest.standin import SEARCH_FAILURE, standin_saleor

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"
LOCUST = REPO_ROOT / ".venv" / "bin" / "locust"
FAST_SHOPPERS = {"SHOPPER_THINK_SECONDS": "0.05,0.2", "CHECKOUT_COMPLETE_SHARE": "1", "LOAD_SHAPE": ""}
JOURNEY_STEPS = (
    "ProductList",
    "CategoryProducts",
    "ProductDetails",
    "SearchProducts",
    "CheckoutCreate",
    "CheckoutShippingAddressUpdate",
    "CheckoutDeliveryMethodUpdate",
    "CheckoutComplete",
)
PRODUCT_LISTS_WANTED = 20
RUN_DEADLINE_SECONDS = 150


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


def request_counts(stats_csv: Path) -> dict[str, int]:
    """Locust's per-operation request counts as its CSV writer last wrote them (every second)."""
    if not stats_csv.is_file():
        return {}
    try:
        rows = read_csv(str(stats_csv))
        return {row["Name"]: int(row["Request Count"]) for row in rows if row["Name"] != "Aggregated"}
    except (KeyError, ValueError):  # caught between the writer's truncate and its write
        return {}


def every_journey_step_seen(counts: dict[str, int]) -> bool:
    return all(counts.get(step, 0) > 0 for step in JOURNEY_STEPS) and (
        counts.get("ProductList", 0) > PRODUCT_LISTS_WANTED
    )


def run_locust_until_every_step(host: str, csv_prefix: Path, **env: str) -> tuple[int, str]:
    """Run 8 fast shoppers until Locust's statistics show every journey step, then stop
    Locust as an operator would (SIGTERM: it writes its summary and CSV files and exits)."""
    process = subprocess.Popen(
        [
            str(LOCUST),
            *("-f", "loadtest/locustfile.py", "--headless", "--host", host, "--csv", str(csv_prefix)),
            *("--only-summary", "--stop-timeout", "2", "-u", "8", "-r", "8"),
            *("-t", f"{RUN_DEADLINE_SECONDS}s"),
        ],
        cwd=REPO_ROOT,
        env=locust_env(PYTHONPATH=str(REPO_ROOT), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stats_csv = Path(f"{csv_prefix}_stats.csv")
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS + 30
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if every_journey_step_seen(request_counts(stats_csv)):
                process.send_signal(signal.SIGTERM)
                break
            time.sleep(0.5)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Locust exits 1 when any request failed, which this run is built to cause.
    assert process.returncode in (0, 1), stderr[-3000:]
    return process.returncode, stderr


def test_headless_run_against_a_standin(standin, tmp_path: Path) -> None:
    prefix = tmp_path / "smoke"
    _, stderr = run_locust_until_every_step(standin.url, prefix, **FAST_SHOPPERS)

    stats = {row["Name"]: row for row in read_csv(f"{prefix}_stats.csv") if row["Name"] != "Aggregated"}
    failures = read_csv(f"{prefix}_failures.csv")
    requests = {name: int(row["Request Count"]) for name, row in stats.items()}
    failed = {name: int(row["Failure Count"]) for name, row in stats.items()}

    # discovery: the channel list is refused to an anonymous shopper, the fallback answers
    assert requests["Channels"] >= 1
    assert requests["ChannelBySlug"] >= 1
    for operation in JOURNEY_STEPS:
        assert requests.get(operation, 0) > 0, operation
    assert requests["ProductList"] > PRODUCT_LISTS_WANTED
    # Locust names each request by operation: what it reports is what the stand-in saw (the
    # stand-in may have seen a request or two after the CSV's last write, never fewer)
    assert set(requests) <= set(standin.operations)
    assert all(standin.operations[name] >= count for name, count in requests.items())

    # exactly the injected failure, with its message, and nothing else
    assert {row["Name"] for row in failures} == {"SearchProducts"}
    assert all(SEARCH_FAILURE in row["Error"] for row in failures)
    assert failed["SearchProducts"] == requests["SearchProducts"]
    assert {name for name, count in failed.items() if count} == {"SearchProducts"}
    # the unpaid checkoutComplete answers were counted as expected outcomes
    assert "checkoutComplete outcomes: CHECKOUT_NOT_FULLY_PAID" in stderr


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


def test_a_run_that_sends_no_shop_traffic_fails(standin, tmp_path: Path) -> None:
    prefix = tmp_path / "nothing"
    completed = run_locust(
        standin.url,
        prefix,
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        **FAST_SHOPPERS,
        SALEOR_CHANNEL="no-such-channel",
    )
    # Before: an ERROR line per visit, 0 failures and exit status 0.
    assert completed.returncode == 1, completed.stderr[-3000:]
    failures = read_csv(f"{prefix}_failures.csv")
    assert {row["Name"] for row in failures} == {"discovery"}
    assert all("channel 'no-such-channel' does not exist" in row["Error"] for row in failures)
    stats = {row["Name"]: row for row in read_csv(f"{prefix}_stats.csv") if row["Name"] != "Aggregated"}
    assert int(stats["discovery"]["Failure Count"]) == int(stats["discovery"]["Request Count"]) >= 1
    assert set(stats) == {"ChannelBySlug", "discovery"}  # not one shop request
