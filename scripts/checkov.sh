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
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

if ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
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
