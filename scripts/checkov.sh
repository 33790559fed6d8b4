#!/usr/bin/env bash
# checkov over the Saleor tier's nested stacks (infra-cfn/) and the SAM root template,
# in its own virtual environment: checkov pins old boto3 and urllib3 releases that would
# break `sam` and Locust in .venv, so it never goes there.
#
# Soft-fail is off: the script exits non-zero on any failed check. A check that does not
# apply is skipped in the resource's own Metadata, with its reason:
#   Metadata: { checkov: { skip: [ { id: CKV_AWS_xx, comment: one-line reason } ] } }
# A fresh install takes about a minute from PyPI; later runs reuse .venv-checkov.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
VENV=.venv-checkov
# The project's Python (3.13, found as the Makefile finds it): checkov 3.3.30 installs and
# runs on it (checked when the runtime moved from 3.11), and a machine then needs only one.
PYTHON=$(sh scripts/find-python.sh 3.13)
want_python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have_python=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)

# Reinstalled when checkov's pin moves, and when the venv is of another Python (a 3.11
# one from before the runtime moved).
if [ "$have_python" != "$want_python" ] ||
  ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "installing checkov $CHECKOV_VERSION into $VENV"
  started=$SECONDS
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION"
  echo "installed in $((SECONDS - started)) s"
fi

# --skip-download: no Bridgecrew platform calls. --framework cloudformation reads the SAM
# root too (AWS::Serverless::* resources are checked as their CloudFormation forms).
# One run per target: given both --directory and --file, checkov scans only one of them.
run() { "$VENV/bin/checkov" --skip-download --quiet --compact --framework cloudformation "$@"; }
status=0
run --directory infra-cfn || status=$?
run --file template.yaml || status=$?
if [ "$status" -ne 0 ]; then
  echo "checkov: findings above are neither fixed nor skipped with a reason in the resource's Metadata" >&2
fi
exit "$status"
