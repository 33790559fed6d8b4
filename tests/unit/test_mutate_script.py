"""scripts/mutate.py (`make mutate`): the parts that decide what is mutated and how a mutant
counts, checked without running mutmut."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate_script", REPO_ROOT / "scripts" / "mutate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mutate = load_script()


@pytest.mark.parametrize(
    ("exit_code", "status"),
    [
        (1, "killed"),
        (3, "killed"),
        (0, "survived"),
        (33, "no tests"),
        (5, "no tests"),
        (-24, "timeout"),
        (24, "timeout"),
        (152, "timeout"),
        (36, "timeout"),
        (-9, "timeout"),
        (34, "skipped"),
        (None, "not checked"),
        (-11, "suspicious"),
        (35, "suspicious"),
    ],
)
def test_exit_codes_are_counted_as_mutmut_means_them(exit_code, status):
    assert mutate.classify(exit_code) == status


def test_score_counts_timeouts_as_caught_and_no_tests_as_survivors():
    result = mutate.ModuleResult("policy", Path("work"), ["tests/unit"])
    result.counts.update({"killed": 85, "timeout": 5, "survived": 6, "no tests": 4, "skipped": 7})
    assert result.tested == 100
    assert result.score == 90.0


def test_module_names_map_to_paths_and_mutant_names():
    assert mutate.module_path("policy") == "src/saleor_scaling/policy.py"
    assert mutate.module_path("adapters.autoscaling") == "src/saleor_scaling/adapters/autoscaling.py"
    assert mutate.module_glob("policy") == "saleor_scaling.policy.*"
    assert mutate.module_glob("adapters.autoscaling") == "saleor_scaling.adapters.autoscaling.*"


def test_the_scratch_pyproject_replaces_only_the_mutmut_table():
    base = (REPO_ROOT / "pyproject.toml").read_text()
    written = mutate.scratch_pyproject(
        base, {"only_mutate": ["src/saleor_scaling/policy.py"], "debug": False, "timeout_constant": 2.5}
    )
    parsed = tomllib.loads(written)
    assert parsed["tool"]["mutmut"] == {
        "only_mutate": ["src/saleor_scaling/policy.py"],
        "debug": False,
        "timeout_constant": 2.5,
    }
    original = tomllib.loads(base)
    del original["tool"]["mutmut"], parsed["tool"]["mutmut"]
    assert parsed == original


def test_excluded_functions_get_the_pragma_on_their_header_line(tmp_path: Path):
    source = tmp_path / "module.py"
    source.write_text(
        "def kept(x: int) -> int:\n"
        "    return x + 1\n"
        "\n"
        "\n"
        "def left_out(\n"
        "    x: int,  # a comment: with a colon\n"
        ") -> int:\n"
        '    """Docstring."""\n'
        "    return x - 1\n"
        "\n"
        "\n"
        "class Group:\n"
        "    def left_out(self) -> int:\n"
        "        return 2\n"
    )
    mutate.exclude_functions(source, ["left_out"])
    lines = source.read_text().splitlines()
    marked = [number for number, line in enumerate(lines, 1) if "# pragma: no mutate block" in line]
    assert marked == [7, 13]
    assert lines[6] == ") -> int:  # pragma: no mutate block"
