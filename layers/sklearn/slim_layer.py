"""Shrink the layer and precompile it, so it fits Lambda's 250 MB and imports fast.

- Drops tests, headers, type stubs and sources (.pyi .pyx .pxd .c .cpp .h), keeping
  `numpy/f2py` and `numpy/_core/tests` (numpy imports from both at run time).
- Strips debug symbols from extension modules, but never inside `*.libs/`: auditwheel
  patched those vendored libraries and stripping them breaks their loading.
- Compiles every module with unchecked-hash .pyc: Lambda zips stamp files 1980, so
  timestamp-checked .pyc would always be stale and recompiled at each cold start
  (`import sklearn.ensemble` measured 1.34 s -> 0.42 s cold).
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

KEEP_DIRS = ("numpy/f2py", "numpy/_core/tests")
DROP_DIR_NAMES = {"tests", "test", "testing_data", "include", "__pycache__"}
DROP_SUFFIXES = {".pyi", ".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp"}


def _kept(path: Path, root: Path) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(relative == keep or relative.startswith(keep + "/") for keep in KEEP_DIRS)


def slim(root: Path) -> None:
    # The .pyc it writes carry this interpreter's magic number: only 3.13's are used by the
    # python3.13 runtime, any other would be ignored and every module compiled at cold start.
    if sys.version_info[:2] != (3, 13):
        sys.exit(f"slim_layer.py must run on Python 3.13 (the Lambda runtime), not {sys.version}")
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if _kept(path, root) or not path.exists():
            continue
        if path.is_dir() and path.name in DROP_DIR_NAMES and not path.name.endswith(".libs"):
            if not any(_kept(child, root) for child in path.rglob("*")):
                shutil.rmtree(path)
        elif path.is_file() and path.suffix in DROP_SUFFIXES:
            path.unlink()
    strip = shutil.which("strip")
    if strip:
        for library in root.rglob("*.so*"):
            if any(part.endswith(".libs") for part in library.relative_to(root).parts):
                continue
            subprocess.run([strip, "--strip-unneeded", str(library)], check=False)
    ok = compileall.compile_dir(
        str(root),
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        # A few vendored files are Python-2-only or templates; they are never imported.
        print("compileall reported files it could not compile (left as source)")


if __name__ == "__main__":
    slim(Path(sys.argv[1]))
