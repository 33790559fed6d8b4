"""loadtest/run.sh with stand-ins for the AWS CLI and Locust on PATH: it reads the stack's
ShopUrl, hands Locust the host, shape and report paths, and fails clearly otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "loadtest" / "run.sh"
TOOLS = ("dirname", "date", "mkdir", "tr", "cat", "env")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH with the tools the script needs, and no aws or locust unless a test adds one."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (directory / tool).symlink_to(found)
    return directory


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def run(bin_dir: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, str(SCRIPT), *args],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "REPORTS_DIR": str(tmp_path / "reports")},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_runs_locust_against_the_stacks_shop_url(bin_dir, tmp_path):
    calls = tmp_path / "aws-calls"
    stub(bin_dir, "aws", f'echo "$@" >> {calls}; echo "http://shop-123.eu-west-1.elb.amazonaws.com/graphql/"')
    record = tmp_path / "locust-call"
    stub(bin_dir, "locust", f'{{ echo "LOAD_SHAPE=$LOAD_SHAPE"; printf "%s\\n" "$@"; }} > {record}; exit 1')

    completed = run(bin_dir, tmp_path, "my-shop", "spike", "--stop-timeout", "5")

    assert completed.returncode == 1  # Locust's own exit status (1: some requests failed)
    assert "describe-stacks --stack-name my-shop" in calls.read_text()
    assert "OutputKey=='ShopUrl'" in calls.read_text()
    lines = record.read_text().splitlines()
    assert lines[0] == "LOAD_SHAPE=spike"
    args = lines[1:]
    assert args[args.index("-f") + 1] == "loadtest/locustfile.py"
    assert "--headless" in args
    assert args[args.index("--host") + 1] == "http://shop-123.eu-west-1.elb.amazonaws.com"
    (report_dir,) = (tmp_path / "reports").iterdir()
    assert report_dir.name.startswith("loadtest-")
    assert args[args.index("--csv") + 1] == f"{report_dir}/locust"
    assert args[args.index("--html") + 1] == f"{report_dir}/locust.html"
    assert args[-2:] == ["--stop-timeout", "5"]
    assert "web UI" in completed.stdout
    assert "localhost:8089" in completed.stdout


def test_the_shape_defaults_to_trace_and_none_means_no_shape(bin_dir, tmp_path):
    stub(bin_dir, "aws", 'echo "https://shop.example.com/graphql/"')
    record = tmp_path / "locust-call"
    stub(bin_dir, "locust", f'echo "LOAD_SHAPE=$LOAD_SHAPE" > {record}')
    assert run(bin_dir, tmp_path, "my-shop", "").returncode == 0  # make passes SHAPE= empty
    assert record.read_text().strip() == "LOAD_SHAPE=trace"
    assert run(bin_dir, tmp_path, "my-shop", "none", "-u", "5").returncode == 0
    assert record.read_text().strip() == "LOAD_SHAPE="


def test_fails_clearly_without_the_aws_cli(bin_dir, tmp_path):
    completed = run(bin_dir, tmp_path, "my-shop", "step")
    assert completed.returncode == 2
    assert "AWS CLI" in completed.stderr


def test_fails_clearly_when_the_stack_has_no_shop_url(bin_dir, tmp_path):
    stub(bin_dir, "aws", "echo None")
    completed = run(bin_dir, tmp_path, "my-shop", "step")
    assert completed.returncode == 2
    assert "no ShopUrl output" in completed.stderr
    stub(
        bin_dir,
        "aws",
        "echo 'An error occurred (ValidationError): Stack with id my-shop does not exist' >&2; exit 254",
    )
    completed = run(bin_dir, tmp_path, "my-shop", "step")
    assert completed.returncode == 2
    assert "does not exist" in completed.stderr
    assert "could not describe stack my-shop" in completed.stderr


def test_refuses_bad_arguments(bin_dir, tmp_path):
    assert "usage" in run(bin_dir, tmp_path).stderr
    completed = run(bin_dir, tmp_path, "my-shop", "sawtooth")
    assert completed.returncode == 2
    assert "unknown shape" in completed.stderr


def test_is_executable():
    assert os.access(SCRIPT, os.X_OK)
