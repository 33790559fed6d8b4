"""Run pytest on a hostile-input module inside Lambda's memory, in this process.

    python -m tests.fuzz.limited_run --memory-mb 512 --function predict -- tests/fuzz/hostile_predict.py

Lambda gives a function MemorySize in all; the interpreter, its libraries and the handler
are part of it. The limit is RLIMIT_AS (address space, not resident memory: a
declared-but-untouched allocation counts, so a forged header that makes numpy reserve
gigabytes is caught even where Linux would hand out the pages lazily), set to the address
space once everything a run needs stands, plus MemorySize. "Everything" is measured in
two steps, both printed: here, after importing numpy, scikit-learn, the handler and the
test machinery; then in the module (`harness.limit_memory`, which sets the limit), once
the emulated world is built, because moto's backends and the fixtures' trained model are
no part of a Lambda's memory. An allocation beyond the limit is a MemoryError in the test,
which hypothesis shrinks and pytest reports, never a killed worker.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINE_PREFIX = "hostile-input harness:"
MEMORY_VARIABLE = "SALEOR_FUZZ_MEMORY_MB"
"""How limited_run.py tells the module which MemorySize to enforce (harness.limit_memory)."""
REPORT_FD_VARIABLE = "SALEOR_FUZZ_REPORT_FD"
"""A copy of stderr from before pytest captures it, for the figures the outer test reads."""


def address_space_bytes() -> int:
    """VmSize of this process, from /proc (what RLIMIT_AS limits)."""
    return _status_kilobytes("VmSize") * 1024


def peak_address_space_bytes() -> int:
    return _status_kilobytes("VmPeak") * 1024


def _status_kilobytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


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
    print(
        f"{BASELINE_PREFIX} {args.function}: address space after importing numpy, scikit-learn and "
        f"the handler {interpreter / 2**20:.0f} MiB, with pytest, hypothesis and moto "
        f"{address_space_bytes() / 2**20:.0f} MiB",
        flush=True,
    )
    os.environ[MEMORY_VARIABLE] = str(args.memory_mb)
    os.environ[REPORT_FD_VARIABLE] = str(os.dup(2))

    import pytest

    code = int(pytest.main(pytest_args))
    print(
        f"{BASELINE_PREFIX} {args.function}: peak address space {peak_address_space_bytes() / 2**20:.0f} MiB",
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
