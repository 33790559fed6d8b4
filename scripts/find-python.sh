#!/bin/sh
# Prints the absolute path of a Python interpreter of the given version (default 3.13,
# the Lambda runtime's), or says what to do and exits 1. Used by the Makefiles (the root
# one and the layers' ones that `sam build` runs) and scripts/checkov.sh, so that all of
# them build and compile with the same interpreter.
#
# Tried in order: $PYTHON if set; python3.X on PATH (a pyenv shim on PATH is only "there"
# if it runs, so each candidate is run, not just looked up); then pyenv's newest 3.X.
want="${1:-3.13}"

works() {
  "$@" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'; print(sys.executable)" 2>/dev/null
}

if [ -n "${PYTHON:-}" ]; then
  works "$PYTHON" && exit 0
  echo "PYTHON=$PYTHON is not Python $want" >&2
  exit 1
fi
works "python$want" && exit 0
# pyenv itself may be installed but not on PATH (a non-login shell, CI's environment).
for pyenv in pyenv "${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv"; do
  command -v "$pyenv" >/dev/null 2>&1 || continue
  prefix=$("$pyenv" prefix "$want" 2>/dev/null) && works "$prefix/bin/python$want" && exit 0
done
echo "Python $want not found: install it (python$want on PATH, or \`pyenv install $want\`)," \
  "or point PYTHON=/path/to/python$want at it" >&2
exit 1
