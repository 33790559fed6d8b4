"""Mutation testing of chosen modules of saleor_scaling with mutmut 3: `make mutate`.

    python scripts/mutate.py [--modules policy,state,...] [--threshold 90] [--exclude read_floor,...]

mutmut copies the tree into mutants/, rewrites every function of the mutated modules into a
trampoline that can switch to any of its mutants, runs the selected tests once to record which
test executes which function, then reruns, per mutant, only the tests that executed it (with
a CPU-time limit derived from their clean duration, so a mutant that loops is a timeout).

This script runs mutmut once per module, each in its own scratch copy of the repository
(reports/mutation/work/<module>, rebuilt each run, so results never come from an older tree)
where only that module is mutated and only the tests [tool.saleor-mutate] in pyproject.toml
names for it are run: every unit test, plus that module's extra (integration) tests. It
prints killed / survived / timeout, the score and the time per module, writes every
survivor's diff to reports/mutation/survivors.md and the figures to summary.json, and exits 1
when a module's score is below the threshold.

Score = (killed + timeout) / mutants tested. A mutant no selected test executes ("no tests")
counts as a survivor: nothing would catch it.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "saleor_scaling"
COPIED = (
    "src",
    "tests",
    "scripts",
    "functions",
    "events",
    "infra-cfn",
    "layers",
    "template.yaml",
    "samconfig.toml",
)

# mutmut's exit codes per mutant (mutmut/stats.py), grouped the way the score counts them.
KILLED = {1, 3}
TIMEOUT = {24, -24, 152, 255, 36, -9}
"""SIGXCPU from the CPU-time limit, or SIGKILL one second after it."""
SURVIVED = {0}
NO_TESTS = {5, 33}


@dataclass
class ModuleResult:
    module: str
    work: Path
    tests: list[str]
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def tested(self) -> int:
        return sum(self.counts.values()) - self.counts["skipped"]

    @property
    def score(self) -> float:
        caught = self.counts["killed"] + self.counts["timeout"]
        return 100.0 * caught / self.tested if self.tested else 0.0


def classify(exit_code: int | None) -> str:
    if exit_code is None:
        return "not checked"
    if exit_code in KILLED:
        return "killed"
    if exit_code in TIMEOUT:
        return "timeout"
    if exit_code in SURVIVED:
        return "survived"
    if exit_code in NO_TESTS:
        return "no tests"
    if exit_code == 34:
        return "skipped"
    return "suspicious"


def module_path(module: str) -> str:
    """src/saleor_scaling/<module>.py for `policy`, `adapters.autoscaling` or a path given as is."""
    if module.endswith(".py"):
        return module
    return f"src/{PACKAGE}/{module.replace('.', '/')}.py"


def module_glob(module: str) -> str:
    """The mutmut mutant names of a module's functions: saleor_scaling.policy.x_decide__mutmut_3."""
    dotted = module.removesuffix(".py").removeprefix(f"src/{PACKAGE}/").replace("/", ".")
    return f"{PACKAGE}.{dotted}.*"


def toml_value(value: object) -> str:
    # Strings, numbers, booleans and lists of strings: JSON spells them as TOML does.
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def scratch_pyproject(base: str, mutmut: dict[str, object]) -> str:
    """pyproject.toml with its [tool.mutmut] table replaced by `mutmut`."""
    without = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", base)
    table = "\n".join(f"{key} = {toml_value(value)}" for key, value in mutmut.items())
    return f"{without.rstrip()}\n\n[tool.mutmut]\n{table}\n"


def prepare(work: Path, modules: list[str], tests: list[str], exclude: list[str]) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis", "*.pyc", ".aws-sam")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, work / name)
    for module in modules:
        exclude_functions(work / module_path(module), exclude)
    base = (REPO / "pyproject.toml").read_text()
    config = dict(tomllib.loads(base)["tool"]["mutmut"])
    config["only_mutate"] = [module_path(module) for module in modules]
    config["pytest_add_cli_args_test_selection"] = tests
    (work / "pyproject.toml").write_text(scratch_pyproject(base, config))


def exclude_functions(path: Path, names: list[str]) -> None:
    """Mark the named functions of the scratch copy `# pragma: no mutate block` (after the
    colon of their header), which mutmut reads as: no mutant anywhere in this function."""
    lines = path.read_text().splitlines(keepends=True)
    for node in ast.walk(ast.parse("".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            header = node.body[0].lineno - 2  # 0-based index of the line before the body
            while not lines[header].split("#")[0].rstrip().endswith(":"):
                header -= 1
            lines[header] = lines[header].rstrip("\n") + "  # pragma: no mutate block\n"
    path.write_text("".join(lines))


def mutmut_binary() -> str:
    candidate = Path(sys.executable).parent / "mutmut"
    found = str(candidate) if candidate.exists() else shutil.which("mutmut")
    if not found:
        sys.exit("mutmut is not installed: `make venv` installs requirements-dev.txt")
    return found


def run_module(work: Path, module: str, tests: list[str], jobs: int, log: Path) -> ModuleResult:
    result = ModuleResult(module, work, tests)
    command = [mutmut_binary(), "run", "--max-children", str(jobs), module_glob(module)]
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        completed = subprocess.run(command, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False)
    result.seconds = time.monotonic() - started
    meta = work / "mutants" / (module_path(module) + ".meta")
    if completed.returncode != 0 or not meta.exists():
        sys.exit(f"mutmut failed on {module} (exit {completed.returncode}); see {log}")
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    for name, exit_code in sorted(exit_codes.items()):
        status = classify(exit_code)
        result.counts[status] += 1
        if status not in {"killed", "timeout", "skipped"}:
            result.survivors.append(name)
    return result


def survivor_diffs(results: list[ModuleResult]) -> str:
    lines = ["# Mutation survivors", ""]
    for result in results:
        lines.append(f"## {result.module}: {len(result.survivors)} of {result.tested} survived")
        lines.append("")
        for name in result.survivors:
            shown = subprocess.run(
                [mutmut_binary(), "show", name], cwd=result.work, capture_output=True, text=True, check=False
            )
            lines.extend(["```diff", shown.stdout.strip() or shown.stderr.strip(), "```", ""])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["saleor-mutate"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default="", help="comma or space separated; default: the issue's list")
    parser.add_argument("--threshold", type=float, default=float(settings["threshold"]))
    parser.add_argument("--exclude", default="", help="function names left unmutated (comma or space)")
    parser.add_argument("--tests", default="", help="pytest paths instead of the configured selection")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "mutation")
    args = parser.parse_args(argv)

    modules = args.modules.replace(",", " ").split() or list(settings["default_modules"])
    exclude = args.exclude.replace(",", " ").split()
    override = args.tests.replace(",", " ").split()

    def tests_for(module: str) -> list[str]:
        extra: list[str] = settings.get("extra_tests", {}).get(module, [])
        return override or [*settings["tests"], *extra]

    missing = [m for m in modules if not (REPO / module_path(m)).is_file()]
    if missing:
        sys.exit(f"no such module: {', '.join(missing)}")

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "mutmut.log"
    log.write_text("")
    print(f"mutating {', '.join(modules)}; log: {log}", flush=True)

    results = []
    for module in modules:
        work = args.out / "work" / module
        prepare(work, [module], tests_for(module), exclude)
        result = run_module(work, module, tests_for(module), args.jobs, log)
        results.append(result)
        print(
            f"{module:<20} {result.score:5.1f}%  killed {result.counts['killed']:>3}  "
            f"timeout {result.counts['timeout']:>2}  survived {result.counts['survived']:>3}  "
            f"no tests {result.counts['no tests']:>2}  suspicious {result.counts['suspicious']:>2}  "
            f"({result.seconds:.0f} s)",
            flush=True,
        )
    caught = sum(r.counts["killed"] + r.counts["timeout"] for r in results)
    tested = sum(r.tested for r in results)
    total = 100.0 * caught / tested if tested else 0.0
    print(f"{'all':<20} {total:5.1f}%  ({caught} of {tested} mutants caught)")

    (args.out / "survivors.md").write_text(survivor_diffs(results))
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "modules": {
            r.module: {
                "score": round(r.score, 1),
                "seconds": round(r.seconds),
                **r.counts,
                "tests": r.tests,
                "survivors": r.survivors,
            }
            for r in results
        },
        "score": round(total, 1),
        "threshold": args.threshold,
        "excluded_functions": exclude,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"survivors: {args.out / 'survivors.md'}")
    below = [r.module for r in results if r.score < args.threshold]
    if below:
        print(f"below {args.threshold:g}%: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
