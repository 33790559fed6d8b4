"""A load-generator machine needs only loadtest/requirements.txt: in a fresh venv with
exactly that installed (no numpy, no backtest package), the locustfile loads and the
trace shape replays a shared trace, the same replay as in the development venv.

It builds a venv with pip (about 30 s, from pip's cache when warm): marked slow, and part
of `make test` like every other slow test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.shapes import Knobs, TraceShape
from tests.conftest import REPO_ROOT, SHARED_DIR, require_trace

NASA = "nasa_kennedy_1995_per_minute.csv"
REQUIREMENTS = REPO_ROOT / "loadtest" / "requirements.txt"
SCIENTIFIC = ("numpy", "sklearn", "scipy", "matplotlib", "boto3", "aws_lambda_powertools", "saleor_scaling")
"""What the backtest package pulls in, and the package itself: none may be needed."""

PROBE = """
import importlib.util, json, sys
missing = [name for name in sys.argv[1].split(",") if importlib.util.find_spec(name) is None]
import loadtest.locustfile
from loadtest.shapes import Knobs, TraceShape
shape = TraceShape(Knobs(trace="nasa", trace_day="2", peak_users=300, duration_seconds=288))
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
print(json.dumps({"missing": missing, "loaded": loaded, "profile": shape.profile,
                  "spawn_rate": shape.spawn_rate, "shape": loadtest.locustfile.SelectedShape.__name__}))
"""


@pytest.fixture(scope="module")
def locust_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with loadtest/requirements.txt installed and nothing else (pip's own cache
    is reused, so a warm run does not download again)."""
    venv = tmp_path_factory.mktemp("locust-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    # Nothing from the development venv may leak in: only the repository root on the path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.pop("LOCUST_SKIP_MONKEY_PATCH", None)
    env.update(PYTHONPATH=str(REPO_ROOT), SALEOR_SHARED_DIR=str(SHARED_DIR), **extra)
    return env


@pytest.mark.slow
def test_the_locustfile_loads_and_replays_a_trace_with_only_its_requirements(locust_only: Path) -> None:
    require_trace(NASA)
    probe = subprocess.run(
        [str(locust_only), "-c", PROBE, ",".join(SCIENTIFIC)],
        cwd=locust_only.parent,
        env=_clean_env(LOAD_SHAPE="trace"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    answer = json.loads(probe.stdout.strip().splitlines()[-1])
    assert answer["missing"] == list(SCIENTIFIC)  # numpy & co. are not even importable there
    assert answer["loaded"] == []
    assert answer["shape"] == "TraceShape"
    here = TraceShape(Knobs(trace="nasa", trace_day="2", peak_users=300, duration_seconds=288))
    assert answer["profile"] == pytest.approx(here.profile, rel=1e-12)
    assert answer["spawn_rate"] == here.spawn_rate
    assert max(answer["profile"]) == pytest.approx(300)


@pytest.mark.slow
def test_locust_itself_loads_the_locustfile_there(locust_only: Path) -> None:
    require_trace(NASA)
    listed = subprocess.run(
        [str(locust_only.with_name("locust")), "-f", "loadtest/locustfile.py", "--list"],
        cwd=REPO_ROOT,
        env=_clean_env(LOAD_SHAPE="trace"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "Shopper" in listed.stdout
