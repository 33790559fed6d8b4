"""The `sam build` output the build tests read, built once per session unless current."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.build.layer_modules import PACKAGE, SOURCE_ROOT, is_tool, module_name, tool_entries, tool_modules
from tests.conftest import REPO_ROOT

WATCHDOG_FILES = {
    "app.py": REPO_ROOT / "functions" / "watchdog" / "app.py",
    "saleor_scaling/__init__.py": SOURCE_ROOT / PACKAGE / "__init__.py",
    "saleor_scaling/lease.py": SOURCE_ROOT / PACKAGE / "lease.py",
}
"""Everything the watchdog ships (functions/watchdog/Makefile): no layers, no other module."""
BUILD_DIR = Path(os.environ.get("SAM_BUILD_DIR", REPO_ROOT / ".aws-sam" / "build"))


def _build_is_current() -> bool:
    built = BUILD_DIR / "DomainLayer" / "python" / PACKAGE
    source = SOURCE_ROOT / PACKAGE
    if not built.is_dir() or not (BUILD_DIR / "RetrainFunction" / "app.py").is_file():
        return False
    # A build left by another Python (a 3.11 one from before the runtime moved) is rebuilt.
    if not (built / "__pycache__" / f"features.{sys.implementation.cache_tag}.pyc").is_file():
        return False
    # The layer holds the source less src/Makefile's TOOLS, file for file: a build from
    # before a module was added, changed or listed as a tool is rebuilt.
    tools = tool_modules(tool_entries())
    shipped = {
        path.relative_to(source) for path in source.rglob("*.py") if not is_tool(module_name(path), tools)
    }
    if {path.relative_to(built) for path in built.rglob("*.py")} != shipped:
        return False
    if not all(filecmp.cmp(source / path, built / path, shallow=False) for path in shipped):
        return False
    watchdog = BUILD_DIR / "WatchdogFunction"
    if not all(
        (watchdog / path).is_file() and filecmp.cmp(source_path, watchdog / path, shallow=False)
        for path, source_path in WATCHDOG_FILES.items()
    ):
        return False
    for function in ("predict", "retrain"):
        name = f"{function.capitalize()}Function"
        if not filecmp.cmp(
            REPO_ROOT / "functions" / function / "app.py", BUILD_DIR / name / "app.py", shallow=False
        ):
            return False
    return True


@pytest.fixture(scope="session")
def build_dir() -> Path:
    if not _build_is_current():
        sam = shutil.which("sam") or str(Path(sys.executable).with_name("sam"))
        if not Path(sam).exists():
            pytest.fail("the `sam` CLI is missing: install requirements-dev.txt (make venv)")
        # sam's pip builder wants a python3.13 on PATH, as `make build` gives it: this
        # interpreter's bin first (a pyenv shim there may not resolve without PYENV_VERSION).
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        subprocess.run(
            [sam, "build", "--build-dir", str(BUILD_DIR)],
            cwd=REPO_ROOT,
            check=True,
            timeout=900,
            env={**os.environ, "PATH": path},
        )
    return BUILD_DIR
