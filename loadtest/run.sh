#!/usr/bin/env bash
# Locust, headless, against a deployed stack's load balancer, with CSV and HTML reports.
#   loadtest/run.sh STACK_NAME [step|spike|trace]      (or: make loadtest STACK=... SHAPE=...)
# Knobs: PEAK_USERS, DURATION_SECONDS, SPAWN_RATE, TRACE, TRACE_DAY, SALEOR_CHANNEL
# (see docs/loadtest.md). For the web UI instead:
#   locust -f loadtest/locustfile.py --host "$URL"     then open http://localhost:8089
set -euo pipefail
cd "$(dirname "$0")/.."
STACK="${1:-}"
SHAPE="${2:-trace}"
if [ -z "$STACK" ]; then
  echo "usage: $0 STACK_NAME [step|spike|trace]" >&2
  exit 2
fi
command -v aws >/dev/null || { echo "the AWS CLI is needed to read the stack's ShopUrl output" >&2; exit 2; }
URL=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='ShopUrl'].OutputValue" --output text)
if [ -z "$URL" ] || [ "$URL" = "None" ]; then
  echo "stack $STACK has no ShopUrl output (an existing shop? pass its URL to locust --host yourself)" >&2
  exit 2
fi
HOST="${URL%/graphql/}"
OUT="reports/loadtest-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
echo "Locust -> $HOST, shape $SHAPE; reports in $OUT"
LOAD_SHAPE="$SHAPE" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" locust -f loadtest/locustfile.py --headless \
  --host "$HOST" --csv "$OUT/locust" --html "$OUT/locust.html" --only-summary
