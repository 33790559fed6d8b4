#!/usr/bin/env bash
# checkov in its own virtual environment: it pins an old boto3 and urllib3 that would
# break `sam` and Locust in .venv. Exits non-zero on any finding not skipped, with its
# reason, in the template (Metadata: checkov: skip: [{id, comment}]).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
CHECKOV_VERSION=3.3.30
VENV=.venv-checkov
if [ ! -x "$VENV/bin/checkov" ] || ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION"
fi
# One run per target: given both --directory and --file, checkov scans only the first.
status=0
"$VENV/bin/checkov" --skip-download --quiet --compact --framework cloudformation --directory infra-cfn || status=1
"$VENV/bin/checkov" --skip-download --quiet --compact --framework cloudformation --file template.yaml || status=1
exit $status
