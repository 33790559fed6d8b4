#!/usr/bin/env bash
# Locust, headless, against a deployed stack's load balancer, with CSV and HTML reports.
#
#   loadtest/run.sh STACK_NAME [step|spike|trace|none] [extra locust options...]
#   make loadtest STACK=saleor-shop SHAPE=spike
#
# Knobs come from the environment: PEAK_USERS, DURATION_SECONDS, SPAWN_RATE, STEP_COUNT,
# SPIKE_*, TRACE, TRACE_DAY, TRACE_DAYS, TRACE_STEP_MINUTES, SALEOR_CHANNEL, SALEOR_DEFAULT_CHANNEL, SALEOR_TOKEN (an app token),
# SHOPPER_THINK_SECONDS, CHECKOUT_COMPLETE_SHARE (docs/loadtest.md). With SHAPE=none
# pass Locust's own -u/-r/-t as extra options. Reports go to ${REPORTS_DIR:-reports}/loadtest-<UTC time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${1:-}"
SHAPE="${2:-}"
SHAPE="${SHAPE:-trace}"
shift $(($# < 2 ? $# : 2))
if [ -z "$STACK" ]; then
  echo "usage: $0 STACK_NAME [step|spike|trace|none] [extra locust options]" >&2
  exit 2
fi
case "$SHAPE" in
  step | spike | trace | none) ;;
  *)
    echo "unknown shape '$SHAPE': use step, spike, trace or none" >&2
    exit 2
    ;;
esac
if ! command -v aws >/dev/null 2>&1; then
  echo "the AWS CLI (aws) is not on PATH: it is needed to read the ShopUrl output of stack $STACK." >&2
  echo "Install it, or run Locust yourself: locust -f loadtest/locustfile.py --host http://<alb-dns-name>" >&2
  exit 2
fi
if ! URL=$(aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='ShopUrl'].OutputValue" --output text); then
  echo "could not describe stack $STACK (see the aws error above: name, region, credentials?)" >&2
  exit 2
fi
URL="$(printf '%s' "$URL" | tr -d '[:space:]')"
if [ -z "$URL" ] || [ "$URL" = "None" ]; then
  echo "stack $STACK has no ShopUrl output: is it deployed (and in this region)?" >&2
  exit 2
fi
HOST="${URL%/}"
HOST="${HOST%/graphql}"

OUT="${REPORTS_DIR:-reports}/loadtest-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
LOCUST_SHAPE="$SHAPE"
[ "$SHAPE" = none ] && LOCUST_SHAPE=""
echo "Locust -> $HOST/graphql/, shape ${SHAPE}; reports in $OUT/"
echo "(for the web UI instead: LOAD_SHAPE=$LOCUST_SHAPE locust -f loadtest/locustfile.py --host $HOST"
echo " then open http://localhost:8089)"

status=0
LOAD_SHAPE="$LOCUST_SHAPE" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
  locust -f loadtest/locustfile.py --headless --host "$HOST" \
  --csv "$OUT/locust" --csv-full-history --html "$OUT/locust.html" --only-summary "$@" || status=$?
echo "reports: $OUT/locust.html, $OUT/locust_stats.csv, $OUT/locust_stats_history.csv, $OUT/locust_failures.csv"
# Locust exits 1 when any request or discovery failed (a run that never discovered sent no
# shop traffic): the run itself is complete, the report says what.
exit "$status"
