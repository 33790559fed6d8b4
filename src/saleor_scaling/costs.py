"""What the scaling machinery costs a month at the template's defaults (`make bench`).

The quantities come from two places and nowhere else:

- **The templates** (`template.yaml`, `infra-cfn/monitoring.yaml`): each function's memory
  and schedule, the subscriptions, keys, alarms and dashboards that exist at the defaults.
- **A measured replay** (`saleor_scaling.local.metering`): the real handlers run against
  emulated AWS, and what they really did is counted: run durations, the metrics each
  `GetMetricData` call requested, S3 requests by price class, SNS publishes, the bytes they
  logged, and the distinct custom metrics in the Embedded Metric Format (EMF) lines
  Powertools printed (`emf_metrics`), with the hours in which each was emitted.

The prices are us-east-1 list prices, kept in `PRICES` and nowhere else, each with the page
it was read from and when. How each is applied, sentence by sentence from those pages:

- Lambda (https://aws.amazon.com/lambda/pricing/): "You are charged based on the number of
  requests for your functions and the duration it takes for your code to execute."
  "Duration charges apply to code that runs in the handler of a function as well as
  initialization code that is declared outside of the handler": a cold start's import time
  is billed too (`cold_starts_per_month` x the measured import). x86: $0.0000166667 per
  GB-second, $0.20 per million requests.
- CloudWatch (https://aws.amazon.com/cloudwatch/pricing/): custom metrics $0.30 per metric
  per month for the first 10,000, "prorated by the hour" and metered only in the hours a
  metric is sent, so a metric emitted once a night bills 1/24 of a month; a metric is one
  namespace + name + dimension set. `GetMetricData`: $0.01 per 1,000 metrics requested (every
  call, every page). Logs: $0.50 per GB ingested (standard class), $0.03 per GB-month stored.
  Alarms: $0.10 per standard-resolution alarm metric a month (a metric-math alarm is billed
  for each metric it reads). Dashboards: $3 a month each. EMF lines are log ingestion: they
  are not PutMetricData calls.
- S3 (https://aws.amazon.com/s3/pricing/): S3 Standard $0.023 per GB-month; PUT, COPY, POST
  and LIST requests $0.005 per 1,000; GET, SELECT and all other requests $0.0004 per 1,000;
  DELETE is free.
- X-Ray (https://aws.amazon.com/xray/pricing/): $5.00 per million traces recorded (after the
  perpetual free 100,000). With active tracing Lambda samples the first request of each
  second, so every run once every 5 minutes is a trace.
- SNS (https://aws.amazon.com/sns/pricing/): $0.50 per million publishes; e-mail deliveries
  $2.00 per 100,000 (the default `AlarmEmail` is empty: no subscription).
- KMS (https://aws.amazon.com/kms/pricing/): "Each AWS KMS key that you create in KMS costs
  $1/month"; "If you enable automatic key rotation, each newly generated backing key costs an
  additional $1/month" (the first two rotations; `NoticesKey` rotates yearly, so $1 in the
  first year, up to $3 from the third); requests $0.03 per 10,000 (an SSE-KMS topic's publish
  asks KMS for a data key: counted as one request per publish, an upper bound).

Free tiers are left out on purpose: an account's perpetual free allowances (10 custom
metrics, 10 alarm metrics, 3 dashboards, 5 GB of logs, 1 million Lambda requests and 400,000
GB-seconds, 100,000 traces) are shared with everything else in it, so this is the bill of an
account that has used them up.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HOURS_PER_MONTH = 730.0
"""AWS's pricing examples use 730 hours a month."""
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GIB = float(2**30)
"""A GB as AWS bills data (logs, S3): 2**30 bytes."""
LOG_EVENT_OVERHEAD_BYTES = 26
"""PutLogEvents counts each event as its UTF-8 message plus 26 bytes; ingestion is billed on
the same size (an upper bound if the bill counts only the message)."""
AWS_NAMESPACE_PREFIX = "AWS/"
AGENT_NAMESPACE = "CWAgent"
"""Published by the CloudWatch agent on the shop's instances (infra-cfn/app.yaml), not by the
scaler; the Saleor tier's cost, not the machinery's."""


@dataclass(frozen=True)
class Price:
    usd: float
    per: float
    unit: str
    source: str
    read: str = "2026-12-02"

    def cost(self, quantity: float) -> float:
        return self.usd * quantity / self.per


_CW = "https://aws.amazon.com/cloudwatch/pricing/"
PRICES: dict[str, Price] = {
    "lambda_gb_second": Price(0.0000166667, 1, "GB-second (x86)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": Price(0.20, 1e6, "requests", "https://aws.amazon.com/lambda/pricing/"),
    "custom_metric": Price(0.30, HOURS_PER_MONTH, "metric-hours (first 10,000 metrics)", _CW),
    "get_metric_data": Price(0.01, 1000, "metrics requested", _CW),
    "log_ingestion": Price(0.50, 1, "GB ingested (standard)", _CW),
    "log_storage": Price(0.03, 1, "GB-month stored", _CW),
    "alarm_metric": Price(0.10, 1, "standard alarm metric-months", _CW),
    "dashboard": Price(3.00, 1, "dashboard-months", _CW),
    "s3_put": Price(0.005, 1000, "PUT/COPY/POST/LIST requests", "https://aws.amazon.com/s3/pricing/"),
    "s3_get": Price(0.0004, 1000, "GET and other requests", "https://aws.amazon.com/s3/pricing/"),
    "s3_storage": Price(0.023, 1, "GB-month (S3 Standard)", "https://aws.amazon.com/s3/pricing/"),
    "xray_trace": Price(5.00, 1e6, "traces recorded", "https://aws.amazon.com/xray/pricing/"),
    "sns_publish": Price(0.50, 1e6, "publishes", "https://aws.amazon.com/sns/pricing/"),
    "sns_email": Price(2.00, 1e5, "e-mail deliveries", "https://aws.amazon.com/sns/pricing/"),
    "kms_key": Price(1.00, 1, "key-months (first year)", "https://aws.amazon.com/kms/pricing/"),
    "kms_request": Price(0.03, 10000, "requests", "https://aws.amazon.com/kms/pricing/"),
}
"""Every price the model uses: us-east-1 list prices, read on the date given."""

S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListBuckets",
        "PutObjectTagging",
    }
)
S3_FREE = frozenset({"DeleteObject", "DeleteObjects"})


# ---------------------------------------------------------------- what the handlers emit


@dataclass(frozen=True, order=True)
class MetricKey:
    """One billed custom metric: namespace, name and the dimension set with its values."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]

    def label(self) -> str:
        dims = ",".join(f"{key}={value}" for key, value in self.dimensions)
        return f"{self.namespace}/{self.name}{{{dims}}}"


def emf_metrics(lines: Iterable[str]) -> set[MetricKey]:
    """The distinct metrics in Embedded Metric Format log lines (the JSON objects with an
    `_aws.CloudWatchMetrics` directive that CloudWatch Logs turns into metrics): each metric
    name once per dimension set of its directive, with the values the line carries."""
    found: set[MetricKey] = set()
    for line in lines:
        text = line.strip()
        if not text.startswith("{") or '"_aws"' not in text:
            continue
        blob = json.loads(text)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive.get("Dimensions", [[]]):
                dimensions = tuple(sorted((name, str(blob[name])) for name in dimension_set))
                for metric in directive["Metrics"]:
                    found.add(MetricKey(directive["Namespace"], metric["Name"], dimensions))
    return found


# ---------------------------------------------------------------- what the templates say


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation/SAM template as plain dicts (cfn-lint's loader: tags in long form)."""
    from cfnlint.decode.cfn_yaml import load

    loaded: dict[str, Any] = json.loads(json.dumps(load(str(path))))
    return loaded


def runs_per_month(schedule: str) -> float:
    """Invocations a month of an EventBridge `rate(...)` or a daily/hourly `cron(...)`."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", schedule.strip())
    if rate:
        seconds = int(rate.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[rate.group(2).rstrip("s")]
        return SECONDS_PER_MONTH / seconds
    cron = re.fullmatch(r"cron\((.+)\)", schedule.strip())
    if cron:
        fields = cron.group(1).split()
        if len(fields) == 6 and fields[2] in {"*", "?"} and fields[3] == "*" and fields[4] in {"*", "?"}:
            minutes = len(fields[0].split(",")) if fields[0] != "*" else 60
            hours = len(fields[1].split(",")) if fields[1] != "*" else 24
            return HOURS_PER_MONTH / 24 * minutes * hours
    raise ValueError(f"cannot count the runs of schedule {schedule!r}")


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    memory_mb: int
    timeout_seconds: int
    schedule: str

    @property
    def runs_per_month(self) -> float:
        return runs_per_month(self.schedule)


@dataclass(frozen=True)
class TemplateDefaults:
    functions: dict[str, FunctionConfig]
    email_subscriptions: int
    kms_keys: int
    dashboards: int
    alarm_metrics: dict[str, int]
    """Alarm logical id -> metrics it reads (billed per metric)."""
    log_retention_days: int
    state_noncurrent_days: int


def template_defaults(root: Path = REPO_ROOT) -> TemplateDefaults:
    """The figures the bill depends on, read from the templates at their parameter defaults."""
    template = load_template(root / "template.yaml")
    parameters = template["Parameters"]
    resources = template["Resources"]

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in parameters:
            return parameters[node["Ref"]]["Default"]
        return node

    functions: dict[str, FunctionConfig] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        name = properties["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        (event,) = [e for e in properties["Events"].values() if e["Type"] == "Schedule"]
        functions[name] = FunctionConfig(
            name=logical_id,
            memory_mb=int(value(properties["MemorySize"])),
            timeout_seconds=int(value(properties["Timeout"])),
            schedule=str(value(event["Properties"]["Schedule"])),
        )
    monitoring = load_template(root / "infra-cfn" / "monitoring.yaml")
    alarm_metrics = {
        logical_id: len([m for m in r["Properties"].get("Metrics", []) if "MetricStat" in m]) or 1
        for logical_id, r in monitoring["Resources"].items()
        # At the defaults the root creates the shop and passes its target group, so the
        # conditional unhealthy-hosts alarm exists too: every alarm is counted.
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    email = parameters["AlarmEmail"]["Default"]
    state_rule = next(
        rule
        for rule in resources["ModelBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        if rule.get("Prefix") == "state/"
    )
    return TemplateDefaults(
        functions=functions,
        email_subscriptions=1 if email else 0,
        kms_keys=sum(1 for r in resources.values() if r["Type"] == "AWS::KMS::Key"),
        dashboards=sum(
            1 for r in monitoring["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
        ),
        alarm_metrics=alarm_metrics,
        log_retention_days=int(parameters["LogRetentionDays"]["Default"]),
        state_noncurrent_days=int(state_rule["NoncurrentVersionExpiration"]["NoncurrentDays"]),
    )


# ---------------------------------------------------------------- what a run does (measured)


@dataclass
class RunProfile:
    """One function's measured runs (means per run) and the custom metrics they emitted."""

    function: str
    runs: int
    seconds: float
    """Mean duration of a warm run (CPU seconds measured by the metering replay)."""
    init_seconds: float
    """Import time of the handler module (what a cold start adds)."""
    log_bytes: float
    log_events: float
    metrics_requested: float
    """Metrics requested by GetMetricData, summed over the run's calls and pages."""
    s3_requests: dict[str, float]
    """Operation -> mean calls per run."""
    sns_publishes: float
    metric_hours_share: dict[MetricKey, float] = field(default_factory=dict)
    """Metric -> share of the function's hours in which it was emitted (1.0 = every hour)."""
    state_bytes: float = 0.0
    """Size of each state object version written (predict), for storage."""
    stored_bytes: float = 0.0
    """Bytes of current objects this function keeps in the bucket (models, history)."""


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    usd: float
    group: str
    """"scaler" (what the runs cost) or "fixed" (resources billed whether or not it runs)."""


def monthly_costs(
    profiles: Mapping[str, RunProfile],
    defaults: TemplateDefaults,
    *,
    cold_starts_per_hour: Mapping[str, float] | None = None,
    prices: Mapping[str, Price] = PRICES,
) -> list[CostLine]:
    """The month's bill, line by line. `cold_starts_per_hour`: how often each function's
    execution environment is recycled (Lambda documents no figure: predict is assumed cold
    once an hour, a nightly retrain always)."""
    cold = dict(cold_starts_per_hour or {"predict": 1.0})
    lines: list[CostLine] = []
    gb_seconds = requests = metrics_requested = log_gb = traces = publishes = 0.0
    s3_put = s3_get = 0.0
    metric_hours: dict[MetricKey, float] = {}
    state_gb_month = stored_gb = 0.0
    for name, profile in profiles.items():
        config = defaults.functions[name]
        runs = config.runs_per_month
        colds = min(runs, cold.get(name, math.inf) * HOURS_PER_MONTH)
        gb_seconds += config.memory_mb / 1024 * (runs * profile.seconds + colds * profile.init_seconds)
        requests += runs
        traces += runs
        metrics_requested += runs * profile.metrics_requested
        log_gb += runs * (profile.log_bytes + LOG_EVENT_OVERHEAD_BYTES * profile.log_events) / GIB
        publishes += runs * profile.sns_publishes
        for operation, calls in profile.s3_requests.items():
            if operation in S3_FREE:
                continue
            if operation in S3_PUT_CLASS:
                s3_put += runs * calls
            else:
                s3_get += runs * calls
        # A metric is billed for each hour in which it is sent: a function running more
        # often than hourly bills its share of hours; a rarer one an hour per run at most.
        hours = HOURS_PER_MONTH if runs >= HOURS_PER_MONTH else runs
        for key, share in profile.metric_hours_share.items():
            metric_hours[key] = max(metric_hours.get(key, 0.0), share * hours)
        # Versioned state: every write leaves a version kept for the lifecycle's days.
        writes_per_day = runs / (HOURS_PER_MONTH / 24) * profile.s3_requests.get("PutObject", 0.0)
        if profile.state_bytes:
            state_gb_month += writes_per_day * defaults.state_noncurrent_days * profile.state_bytes / GIB
        stored_gb += profile.stored_bytes / GIB

    p = prices
    lines += [
        CostLine(
            "Lambda compute", gb_seconds, "GB-seconds", p["lambda_gb_second"].cost(gb_seconds), "scaler"
        ),
        CostLine("Lambda requests", requests, "requests", p["lambda_request"].cost(requests), "scaler"),
        CostLine(
            "GetMetricData",
            metrics_requested,
            "metrics requested",
            p["get_metric_data"].cost(metrics_requested),
            "scaler",
        ),
        CostLine(
            f"custom metrics ({len(metric_hours)} distinct)",
            sum(metric_hours.values()) / HOURS_PER_MONTH,
            "metric-months",
            p["custom_metric"].cost(sum(metric_hours.values())),
            "scaler",
        ),
        CostLine("log ingestion (incl. EMF)", log_gb, "GB", p["log_ingestion"].cost(log_gb), "scaler"),
        CostLine(
            "log storage",
            log_gb * defaults.log_retention_days / 30.4,
            "GB-months",
            p["log_storage"].cost(log_gb * defaults.log_retention_days / 30.4),
            "scaler",
        ),
        CostLine("S3 PUT/LIST requests", s3_put, "requests", p["s3_put"].cost(s3_put), "scaler"),
        CostLine("S3 GET requests", s3_get, "requests", p["s3_get"].cost(s3_get), "scaler"),
        CostLine(
            "S3 storage",
            stored_gb + state_gb_month,
            "GB-months",
            p["s3_storage"].cost(stored_gb + state_gb_month),
            "scaler",
        ),
        CostLine("X-Ray traces", traces, "traces", p["xray_trace"].cost(traces), "scaler"),
        CostLine("SNS publishes", publishes, "publishes", p["sns_publish"].cost(publishes), "scaler"),
        CostLine(
            "SNS e-mail deliveries",
            publishes * defaults.email_subscriptions,
            "deliveries",
            p["sns_email"].cost(publishes * defaults.email_subscriptions),
            "scaler",
        ),
        CostLine("KMS requests", publishes, "requests", p["kms_request"].cost(publishes), "scaler"),
    ]
    alarm_metrics = float(sum(defaults.alarm_metrics.values()))
    lines += [
        CostLine(
            "KMS key (notices)", defaults.kms_keys, "keys", p["kms_key"].cost(defaults.kms_keys), "fixed"
        ),
        CostLine(
            f"alarms ({len(defaults.alarm_metrics)})",
            alarm_metrics,
            "alarm metrics",
            p["alarm_metric"].cost(alarm_metrics),
            "fixed",
        ),
        CostLine(
            "dashboard", defaults.dashboards, "dashboards", p["dashboard"].cost(defaults.dashboards), "fixed"
        ),
    ]
    return lines


def total(lines: Sequence[CostLine], group: str | None = None) -> float:
    return sum(line.usd for line in lines if group is None or line.group == group)


def cost_table(lines: Sequence[CostLine]) -> str:
    rows = [f"  {'item':<32} {'quantity a month':>22} {'USD':>8}"]
    for group, title in (
        ("scaler", "what the runs cost"),
        ("fixed", "resources billed whether or not it runs"),
    ):
        rows.append(f"  -- {title}")
        for line in (line for line in lines if line.group == group):
            quantity = f"{line.quantity:,.0f}" if line.quantity >= 100 else f"{line.quantity:.3g}"
            rows.append(f"  {line.item:<32} {quantity:>12} {line.unit:<18} {line.usd:8.3f}")
        rows.append(f"  {'subtotal':<32} {'':>31} {total(lines, group):8.2f}")
    rows.append(f"  {'total':<32} {'':>31} {total(lines):8.2f}")
    return "\n".join(rows)


def price_sources(prices: Mapping[str, Price] = PRICES) -> str:
    sources = sorted({(price.source, price.read) for price in prices.values()})
    return "\n".join(f"  {source} (read {read})" for source, read in sources)
