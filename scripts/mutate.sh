#!/usr/bin/env bash
# `make mutate`: mutmut over chosen modules (scripts/mutate.py), from .venv/mutate.
#
# .venv/mutate holds only requirements-mutate.txt (mutmut, and the click it needs, which
# sam's pin keeps out of .venv); a .pth file puts .venv's site-packages under its own, so
# the tests run with exactly the packages `make test` uses. Rebuilt when either changes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# Inside .venv: ignored by git and the linters, and gone with it when .venv is rebuilt.
MUTATE_VENV=${MUTATE_VENV:-$VENV/mutate}
STAMP=$MUTATE_VENV/.installed
dev_site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# The stamp holds what was installed (the pins' digest), not a time: a fresh checkout of the
# same pins, newer on disk, must not rebuild a venv another run is using.
wanted=$(sha256sum requirements-mutate.txt | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$wanted" ] || [ "$VENV/.installed" -nt "$STAMP" ]; then
  echo "installing requirements-mutate.txt into $MUTATE_VENV"
  rm -rf "$MUTATE_VENV"
  "$VENV/bin/python" -m venv "$MUTATE_VENV"
  mutate_site=$("$MUTATE_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # addsitedir (not a bare path) so .venv's own .pth files apply too: the editable install.
  echo "import site; site.addsitedir('$(cd "$dev_site" && pwd)')" >"$mutate_site/zz_dev_venv.pth"
  # pip warns that sam wants click 8.1.8 (sam is never run from this venv): said once here.
  echo "(pip will warn that aws-sam-cli wants click 8.1.8: sam does not run from $MUTATE_VENV)"
  "$MUTATE_VENV/bin/python" -m pip install --quiet -r requirements-mutate.txt
  echo "$wanted" >"$STAMP"
fi
exec "$MUTATE_VENV/bin/python" scripts/mutate.py "$@"
