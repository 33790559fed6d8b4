"""Which `saleor_scaling` modules Lambda runs, read from the source without importing it.

The serving code is the import closure of the two handlers: every module a handler
imports, followed recursively, counting every import statement wherever it stands (at the
top, inside a function, under `if TYPE_CHECKING:`), since a lazy import that only runs on
one path must still find its module in the layer. The tools are what src/Makefile's
`TOOLS` leaves out of the DomainLayer; the tests hold the two to be complements.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = "saleor_scaling"
SOURCE_ROOT = REPO_ROOT / "src"
HANDLERS = (REPO_ROOT / "functions" / "predict" / "app.py", REPO_ROOT / "functions" / "retrain" / "app.py")
LAYER_MAKEFILE = SOURCE_ROOT / "Makefile"


@dataclass(frozen=True)
class ImportSite:
    """`importer` (a file) imports `module` at `line`."""

    importer: Path
    line: int
    module: str

    def where(self, root: Path) -> str:
        return f"{self.importer.relative_to(root)}:{self.line}"


def module_file(module: str, source_root: Path = SOURCE_ROOT) -> Path | None:
    base = source_root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, source_root: Path = SOURCE_ROOT) -> str:
    parts = path.relative_to(source_root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(source_root: Path = SOURCE_ROOT) -> set[str]:
    """Every module of the package in the source tree."""
    return {module_name(path, source_root) for path in (source_root / PACKAGE).rglob("*.py")}


def imports_of(path: Path, source_root: Path = SOURCE_ROOT) -> Iterator[ImportSite]:
    """The package's modules `path` imports. Importing `a.b.c` runs `a` and `a.b` too; `from
    a.b import c` imports the module `a.b.c` if there is one (else `c` is a name in `a.b`)."""
    importer = module_name(path, source_root) if path.is_relative_to(source_root) else None
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, importer, path)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
            targets = [targets[0], *(t for t in targets[1:] if module_file(t, source_root))]
        else:
            continue
        for target in targets:
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                yield ImportSite(path, node.lineno, ".".join(parts[:depth]))


def _absolute(node: ast.ImportFrom, importer: str | None, path: Path) -> str:
    if not node.level:
        return node.module or ""
    if importer is None:
        raise ValueError(f"{path}:{node.lineno}: relative import outside the package")
    # The package a relative import starts from: the module's own if it is an __init__.
    anchor = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def import_closure(
    roots: Iterable[Path] = HANDLERS, source_root: Path = SOURCE_ROOT
) -> dict[str, tuple[ImportSite, ...]]:
    """Every package module the roots import, directly or not, each with the chain of imports
    that reaches it (the first found, breadth first: one of the shortest)."""
    chains: dict[str, tuple[ImportSite, ...]] = {}
    pending: list[tuple[Path, tuple[ImportSite, ...]]] = [(root, ()) for root in roots]
    while pending:
        path, chain = pending.pop(0)
        for site in imports_of(path, source_root):
            if site.module in chains:
                continue
            chains[site.module] = (*chain, site)
            target = module_file(site.module, source_root)
            if target is not None:
                pending.append((target, chains[site.module]))
    return chains


def describe(chain: tuple[ImportSite, ...], root: Path = REPO_ROOT) -> str:
    return " -> ".join(f"{site.where(root)} imports {site.module}" for site in chain)


def tool_entries(makefile: Path = LAYER_MAKEFILE) -> list[str]:
    """src/Makefile's `TOOLS`: paths under src/saleor_scaling/ left out of the layer."""
    found = re.search(r"^TOOLS\s*:=(.*)$", makefile.read_text(), re.M)
    assert found, f"{makefile} has no `TOOLS :=` line (the modules left out of the DomainLayer)"
    return found[1].split()


def tool_modules(entries: Iterable[str]) -> set[str]:
    return {f"{PACKAGE}.{entry.removesuffix('.py').replace('/', '.')}" for entry in entries}


def is_tool(module: str, tools: Iterable[str]) -> bool:
    return any(module == tool or module.startswith(tool + ".") for tool in tools)
