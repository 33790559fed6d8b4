"""The `sam build` output is what Lambda runs: it must fit Lambda's size limit, carry
precompiled unchecked-hash bytecode, and import and run both handlers on its own."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Our own ceiling below Lambda's: 40 MB left for the next library upgrade or a bigger model.
SIZE_BUDGET = 210 * 1024 * 1024
_RUNTIME = re.search(r"^    Runtime: python(\d+)\.(\d+)$", (REPO_ROOT / "template.yaml").read_text(), re.M)
assert _RUNTIME, "template.yaml's Globals carry no Runtime: pythonX.Y"
RUNTIME_PYTHON = (int(_RUNTIME[1]), int(_RUNTIME[2]))


def _size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file() and not file.is_symlink())


@pytest.mark.parametrize("function", ["PredictFunction", "RetrainFunction"])
def test_function_and_layers_fit_lambdas_unzipped_limit(build_dir: Path, function: str) -> None:
    parts = {name: _size(build_dir / name) for name in (function, "SklearnLayer", "DomainLayer")}
    total = sum(parts.values())
    print(
        f"{function}: "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in parts.items())
        + f", total {total / 1e6:.1f} MB"
    )
    assert total < LAMBDA_UNZIPPED_LIMIT
    assert total < SIZE_BUDGET, f"{total / 2**20:.1f} MiB is over the {SIZE_BUDGET / 2**20:.0f} MiB budget"
    assert parts["SklearnLayer"] > 50 * 1e6  # the real libraries, not an empty folder


def test_layers_carry_unchecked_hash_bytecode_of_the_runtimes_python(build_dir: Path) -> None:
    # Lambda stamps unzipped files 1980, so timestamp .pyc would always be stale; and .pyc
    # of another minor version (another magic number) would be ignored and recompiled at
    # every cold start. The tests run on the runtime's Python (pyproject's requires-python).
    assert sys.version_info[:2] == RUNTIME_PYTHON, f"tests must run on Python {RUNTIME_PYTHON}"
    tag = sys.implementation.cache_tag  # cpython-313
    for module in (
        f"SklearnLayer/python/sklearn/ensemble/__pycache__/_forest.{tag}.pyc",
        f"SklearnLayer/python/numpy/__pycache__/__init__.{tag}.pyc",
        f"SklearnLayer/python/narwhals/__pycache__/__init__.{tag}.pyc",
        f"DomainLayer/python/saleor_scaling/__pycache__/features.{tag}.pyc",
    ):
        header = (build_dir / module).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, f"{module}: compiled by another Python"
        flags = int.from_bytes(header[4:8], "little")
        assert flags == 0b01, f"{module}: flags {flags:#b}, expected unchecked hash-based"
    stale = [path for path in build_dir.rglob("*.pyc") if not path.name.endswith(f".{tag}.pyc")]
    assert not stale, f"bytecode of another Python in the artifact: {stale[:3]}"


def test_layers_are_stripped_of_tests_but_keep_what_numpy_needs(build_dir: Path) -> None:
    layer = build_dir / "SklearnLayer" / "python"
    assert not (layer / "sklearn" / "tests").exists()
    assert not (layer / "scipy" / "stats" / "tests").exists()
    assert (layer / "numpy" / "f2py").is_dir()
    assert (layer / "numpy" / "_core" / "tests").is_dir()


def test_built_artifact_imports_and_runs_both_handlers(build_dir: Path) -> None:
    script = Path(__file__).with_name("built_handlers.py")
    completed = subprocess.run(
        [sys.executable, str(script), str(build_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    for module, path in report["modules"].items():
        assert path.startswith(str(build_dir.resolve())), f"{module} imported from {path}, not the artifact"
    # Only the emulated shop (left out of the layer) may come from src/.
    built = str(build_dir.resolve())
    served = {
        name: path
        for name, path in report["package_modules"].items()
        if not name.startswith("saleor_scaling.local")
    }
    assert "saleor_scaling.training" in served
    outside = {name: path for name, path in served.items() if not path.startswith(built)}
    assert not outside, f"imported from outside the artifact: {outside}"
    assert report["retrain"]["status"] == "promoted", report["retrain"]["reason"]
    assert report["predict"]["status"] in {"scaled", "decided"}, report["predict"]["reason"]
    assert report["predict"]["model"]["model_version_id"]


AL2023_GLIBC = (2, 34)  # the python3.13 runtime's Amazon Linux 2023


def test_no_extension_needs_a_newer_glibc_than_the_runtimes(build_dir: Path) -> None:
    # A wheel tagged for a newer glibc than Lambda's imports fine here and fails there with
    # "GLIBC_2.xx not found": read what each shared object asks for, not the wheel tags.
    objdump = shutil.which("objdump")
    if not objdump:
        pytest.skip("objdump (binutils) is not installed")
    libraries = [str(path) for path in build_dir.rglob("*.so*") if path.is_file()]
    assert libraries
    needed: set[tuple[int, ...]] = set()
    for start in range(0, len(libraries), 100):
        dump = subprocess.run(
            [objdump, "-T", *libraries[start : start + 100]], capture_output=True, text=True, check=True
        ).stdout
        needed |= {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", dump)}
    newest = max(needed)
    print(f"newest glibc symbol version needed: {'.'.join(map(str, newest))}")
    assert newest <= AL2023_GLIBC
