"""The DomainLayer ships the serving code and nothing else: every `saleor_scaling` module
the handlers import (directly, lazily, or through another module) and none of the tools
(backtest, local emulator, bench, cost model, registry CLI) that run from a checkout.

src/Makefile's `TOOLS` names what is left out; these tests hold it to the handlers'
import closure, read statically from the source (tests/build/layer_modules.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.build.conftest import WATCHDOG_FILES
from tests.build.layer_modules import (
    HANDLERS,
    LAYER_MAKEFILE,
    PACKAGE,
    SOURCE_ROOT,
    describe,
    import_closure,
    imports_of,
    is_tool,
    module_file,
    module_name,
    package_modules,
    tool_entries,
    tool_modules,
)
from tests.conftest import REPO_ROOT
from tests.infra import cfn

TOOLS = tool_modules(tool_entries())


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_closure_follows_lazy_relative_and_submodule_imports(tmp_path: Path) -> None:
    # A miniature package: each way of importing a module, one of them inside a function.
    _write(
        tmp_path / "src",
        {
            "saleor_scaling/__init__.py": "",
            "saleor_scaling/top.py": "from saleor_scaling import sub\n",
            "saleor_scaling/sub.py": "from .pkg import inner\nX = 1\n",
            "saleor_scaling/pkg/__init__.py": "from . import leaf\n",
            "saleor_scaling/pkg/inner.py": "from ..sibling import Y\n",
            "saleor_scaling/pkg/leaf.py": "",
            "saleor_scaling/sibling.py": "Y = 2\n",
            "saleor_scaling/lazy.py": "",
            "saleor_scaling/dotted/__init__.py": "",
            "saleor_scaling/dotted/deep.py": "",
            "saleor_scaling/unused.py": "import saleor_scaling.top\n",
        },
    )
    handler = tmp_path / "app.py"
    handler.write_text(
        "import json\n"
        "from saleor_scaling.top import sub, MISSING_NAME\n"
        "import saleor_scaling.dotted.deep\n"
        "def handler():\n"
        "    from saleor_scaling.lazy import go\n"
    )
    closure = import_closure([handler], tmp_path / "src")
    assert set(closure) == {
        "saleor_scaling",
        "saleor_scaling.top",
        "saleor_scaling.sub",
        "saleor_scaling.pkg",
        "saleor_scaling.pkg.inner",
        "saleor_scaling.pkg.leaf",
        "saleor_scaling.sibling",
        "saleor_scaling.lazy",
        "saleor_scaling.dotted",
        "saleor_scaling.dotted.deep",
    }
    assert describe(closure["saleor_scaling.sibling"], tmp_path) == (
        "app.py:2 imports saleor_scaling.top -> src/saleor_scaling/top.py:1 imports saleor_scaling.sub"
        " -> src/saleor_scaling/sub.py:1 imports saleor_scaling.pkg.inner"
        " -> src/saleor_scaling/pkg/inner.py:1 imports saleor_scaling.sibling"
    )


def test_the_handlers_closure_is_the_serving_code() -> None:
    closure = import_closure()
    for serving in (
        "saleor_scaling",
        "saleor_scaling.predict_service",
        "saleor_scaling.retrain_service",
        "saleor_scaling.training",
        "saleor_scaling.ensemble",
        "saleor_scaling.adapters.state_store",
    ):
        assert serving in closure, serving
    for tool in ("backtest", "local", "bench", "costs", "registry_cli"):
        assert not [m for m in closure if m == f"{PACKAGE}.{tool}" or m.startswith(f"{PACKAGE}.{tool}.")]


def test_no_serving_code_imports_a_tool() -> None:
    # A tool imported by serving code would be missing in Lambda (ImportError at run time,
    # perhaps only on the path that imports it lazily): fail here, at the import line.
    package = sorted((SOURCE_ROOT / PACKAGE).rglob("*.py"))
    serving = [*HANDLERS, *(path for path in package if not is_tool(module_name(path), TOOLS))]
    offending = [
        f"{site.where(REPO_ROOT)} imports {site.module}"
        for path in serving
        for site in imports_of(path)
        if is_tool(site.module, TOOLS)
    ]
    assert not offending, (
        "serving code (what the Lambda layer ships) imports a tool that src/Makefile's TOOLS leaves "
        "out of the layer; move what both need into a serving module:\n  " + "\n  ".join(offending)
    )


def test_the_makefile_leaves_out_exactly_what_the_handlers_never_import() -> None:
    closure = import_closure()
    unknown = [entry for entry in tool_entries() if not (SOURCE_ROOT / PACKAGE / entry).exists()]
    assert not unknown, f"src/Makefile's TOOLS names what src/{PACKAGE}/ does not hold: {unknown}"
    missing = sorted(module for module in closure if module_file(module) is None)
    assert not missing, "the handlers import modules that do not exist:\n  " + "\n  ".join(
        f"{module}: {describe(closure[module])}" for module in missing
    )
    shipped = {module for module in package_modules() if not is_tool(module, TOOLS)}
    unused = sorted(shipped - set(closure))
    assert not unused, (
        f"neither handler imports {unused}, yet the layer would ship them: add them to TOOLS in "
        f"{LAYER_MAKEFILE.relative_to(REPO_ROOT)} (or import them from serving code)"
    )
    # Where serving code first reaches into a tool; what that tool imports in turn is noise.
    withheld = sorted(
        module
        for module in set(closure) - shipped
        if sum(is_tool(site.module, TOOLS) for site in closure[module]) == 1
    )
    assert not withheld, "the handlers import modules TOOLS leaves out of the layer:\n  " + "\n  ".join(
        f"{module}: {describe(closure[module])}" for module in withheld
    )


def _built_modules(build_dir: Path) -> set[str]:
    """The package's modules in the built layer, by source file or by bytecode."""
    python = build_dir / "DomainLayer" / "python"
    modules = set()
    for path in (python / PACKAGE).rglob("*"):
        if path.is_dir():
            continue
        if path.parent.name == "__pycache__":
            path = path.parent.parent / (path.name.split(".")[0] + ".py")
        assert path.suffix == ".py", f"{path}: neither source nor bytecode in the layer's package"
        modules.add(module_name(path, python))
    return modules


@pytest.mark.build
def test_built_layer_holds_the_serving_code_and_no_tool(build_dir: Path) -> None:
    built = _built_modules(build_dir)
    closure = import_closure()
    absent = sorted(set(closure) - built)
    assert not absent, "the handlers import modules the built layer lacks:\n  " + "\n  ".join(
        f"{module}: {describe(closure[module])}" for module in absent
    )
    extra = sorted(built - set(closure))
    assert not extra, f"the built layer ships modules neither handler imports: {extra}"
    assert {"saleor_scaling.predict_service", "saleor_scaling.retrain_service"} <= built
    assert not {"saleor_scaling.backtest", "saleor_scaling.local", "saleor_scaling.bench"} & built


# Lambda's path: the function's directory, then each layer's python/; then the runtime's own
# site-packages (boto3), here the virtualenv's. Neither src/ nor the checkout is on it.
IMPORT_PROBE = """
import json, sys
import app
import saleor_scaling
loaded = {
    name: getattr(module, "__file__", None)
    for name, module in sys.modules.items()
    if name == "saleor_scaling" or name.startswith("saleor_scaling.")
}
tools = {}
for tool in sys.argv[1:]:
    try:
        __import__(tool)
        tools[tool] = "imported from " + str(sys.modules[tool].__file__)
    except ModuleNotFoundError as error:
        tools[tool] = "ModuleNotFoundError: " + str(error.name)
print(json.dumps({"handler": app.__file__, "package_path": list(saleor_scaling.__path__),
                  "loaded": loaded, "tools": tools}))
"""


@pytest.mark.build
@pytest.mark.parametrize("function", ["PredictFunction", "RetrainFunction"])
def test_each_handler_imports_from_the_built_artifact_alone(build_dir: Path, function: str) -> None:
    build = build_dir.resolve()
    path = [build / function, build / "SklearnLayer" / "python", build / "DomainLayer" / "python"]
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "PYTHONSTARTUP"}}
    env.update(PYTHONPATH=os.pathsep.join(map(str, path)), AWS_DEFAULT_REGION="us-east-1")
    tools = sorted({"saleor_scaling.backtest", *TOOLS})
    completed = subprocess.run(
        [sys.executable, "-P", "-c", IMPORT_PROBE, *tools],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=build,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["handler"] == str(build / function / "app.py")
    assert report["package_path"] == [str(build / "DomainLayer" / "python" / "saleor_scaling")]
    outside = {name: file for name, file in report["loaded"].items() if not str(file).startswith(str(build))}
    assert not outside, f"imported from outside the artifact: {outside}"
    assert "saleor_scaling.predict_service" in report["loaded"]
    assert report["tools"]["saleor_scaling.backtest"] == "ModuleNotFoundError: saleor_scaling.backtest"
    assert report["tools"] == {tool: f"ModuleNotFoundError: {tool}" for tool in tools}


def test_the_watchdog_ships_the_lease_and_nothing_else(build_dir: Path) -> None:
    """The function that gives an expired floor back must not depend on what can break
    predict: its artifact is its handler and the stdlib-only lease record, and the
    template gives it no layer."""
    built = build_dir / "WatchdogFunction"
    shipped = {str(path.relative_to(built)) for path in built.rglob("*") if path.is_file()}
    assert shipped == set(WATCHDOG_FILES)
    root = cfn.load(REPO_ROOT / "template.yaml")
    assert "Layers" not in root["Globals"]["Function"]
    assert "Layers" not in root["Resources"]["WatchdogFunction"]["Properties"]
    probe = subprocess.run(
        [sys.executable, "-P", "-c", "import app, saleor_scaling.lease as l; print(l.__file__)"],
        cwd=built,
        env={"PYTHONPATH": str(built), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(built / "saleor_scaling" / "lease.py")
