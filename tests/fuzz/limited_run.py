"""Run pytest on a hostile-input module inside Lambda's memory, in this process.

    python -m tests.fuzz.limited_run --memory-mb 512 --function predict -- tests/fuzz/hostile_predict.py

Lambda gives a function MemorySize in all; the interpreter and its libraries are part of
it. Here the address space is measured after everything a run needs is imported (numpy,
scikit-learn, the handler, and the test machinery: pytest, hypothesis, moto), and
RLIMIT_AS is set to that baseline plus MemorySize: every byte a run allocates beyond the
imports (the handler's reads and arrays, and moto's copy of what it serves) must fit in
MemorySize. Address space, not resident memory: a declared-but-untouched allocation
counts, so a forged header that makes numpy reserve gigabytes is caught even where Linux
would hand out the pages lazily. An allocation beyond the limit is a MemoryError in the
test (a failure hypothesis shrinks), never a killed worker.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINE_PREFIX = "hostile-input harness:"


def address_space_bytes() -> int:
    """VmSize of this process, from /proc (what RLIMIT_AS limits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def peak_address_space_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmPeak in /proc/self/status")


def import_function(function: str) -> None:
    """What Lambda has loaded before the first run: the libraries and the handler."""
    import numpy  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    from saleor_scaling.local.emulator import load_function

    load_function(function, REPO_ROOT / "functions")


def import_test_machinery() -> None:
    import boto3  # noqa: F401
    import hypothesis  # noqa: F401
    import moto  # noqa: F401
    import pytest  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=int, required=True, help="the function's MemorySize")
    parser.add_argument("--function", required=True, choices=["predict", "retrain"])
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    pytest_args = [arg for arg in args.pytest_args if arg != "--"]

    import_function(args.function)
    interpreter = address_space_bytes()
    import_test_machinery()
    baseline = address_space_bytes()
    limit = baseline + args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(
        f"{BASELINE_PREFIX} {args.function}: address space after importing numpy, scikit-learn and "
        f"the handler {interpreter / 2**20:.0f} MiB, with pytest, hypothesis and moto "
        f"{baseline / 2**20:.0f} MiB; RLIMIT_AS {limit / 2**20:.0f} MiB "
        f"(baseline + MemorySize {args.memory_mb} MB)",
        flush=True,
    )

    import pytest

    code = int(pytest.main(pytest_args))
    print(
        f"{BASELINE_PREFIX} {args.function}: peak address space "
        f"{peak_address_space_bytes() / 2**20:.0f} MiB of the {limit / 2**20:.0f} MiB limit",
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
