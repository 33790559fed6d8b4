"""The shop's own history as a backtest trace: CloudWatch (`--from-cloudwatch`) or the S3
history backup (`--from-bucket`).

Both read through the adapters predict and retraining use (`adapters/cloudwatch.py`,
`adapters/history_archive.py`, `adapters/autoscaling.py`), day by day as the nightly job
reads (one GetMetricData request per UTC day), with impossible values dropped as retraining
drops them (`series.drop_impossible_values`), and turn what they read into what the runner
needs: a `Trace` of requests per minute (NaN where unknown), the group's MinSize and
MaxSize, and the capacity per instance learned from the shop's CPU as retraining learns it
(`labels.estimate_capacity_per_instance`, within 4x of `--capacity`, the CapacityPerInstance
parameter). The shop's own counts are not rescaled (scale factor 1, unless `--scale`).

What CloudWatch keeps, and so what can be read (Amazon CloudWatch API Reference):
    * "Data points with a period of 60 seconds (1-minute) are available for 15 days",
      "with a period of 300 seconds (5-minute) are available for 63 days", "with a period
      of 3600 seconds (1 hour) are available for 455 days" (GetMetricData). A window
      reaching further back than 63 days is refused here with a pointer to the backup:
      hourly data is too coarse to size 5-minute steps (a coarse step would leak its total
      into the minutes before it closes, issue 13).
    * The period of a query depends on how old its *start* is: "Start time between 3 hours
      and 15 days ago - Use a multiple of 60 seconds (1 minute). Start time between 15 and
      63 days ago - Use a multiple of 300 seconds (5 minutes)", "or no data points in that
      time range is returned" (MetricStat, Period). So 1-minute RequestCount is requested
      only for the part of a day that starts within 15 days of now
      (`CloudWatchMetrics.request_minutes` refuses anything older), the rest at 5 minutes.
      moto answers any period at any age; these limits are ours, and the tests check the
      requests, not only the answers.
    * "Elastic Load Balancing reports metrics to CloudWatch only when requests are flowing
      through the load balancer", "If there are no requests flowing through the load
      balancer or no data for a metric, the metric is not reported" (Elastic Load
      Balancing User Guide, "CloudWatch metrics for your Application Load Balancer"). So
      inside a 5-minute step that has any datapoint, an absent minute is an idle minute
      (0). A step with no datapoint at all may be idle or an outage of the recording: it
      is missing data (NaN), as everywhere in this project, never zero load.

Per-minute demand:
    * Where 1-minute RequestCount was read: those minutes (absent ones 0 inside a step with
      data, as above).
    * Where only 5-minute data exists (CloudWatch older than 15 days, the S3 backup): each
      step's busiest minute (the backup's `busiest_minute`, recorded while CloudWatch still
      held the minutes) first, the rest of the step's Sum spread evenly over its other
      four minutes (the split the local emulator publishes, `local.emulator`); where the
      busiest minute is unknown, the Sum spread evenly (a busy minute inside such a step
      is then not seen: its simulated short minutes are a lower bound, and a note says how
      many days). Each step keeps its Sum and its busiest minute, the two figures training
      and the headroom table read; only the position of the busy minute inside its step is
      invented. Such a trace is marked
      5-minute (`source_step_minutes` 5, resample ``busiest-first``), so that the metrics
      the strategies see treat it as 5-minute data.

MinSize is the operator's (`policy.read_floor`: predict's own raised floor is not the
group's MinSize), MaxSize the group's; explicit `--min-size`/`--max-size` win, and with both
given `--from-bucket` does not need the group to exist any more (the bucket outlives the
stack).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.adapters.autoscaling import AutoScalingGroup, GroupNotFoundError
from saleor_scaling.adapters.cloudwatch import (
    FIVE_MINUTE_RETENTION_SECONDS,
    ONE_MINUTE_RETENTION_SECONDS,
    CloudWatchMetrics,
)
from saleor_scaling.adapters.history_archive import DAY_SECONDS, S3HistoryArchive
from saleor_scaling.backtest.traces import MINUTES_PER_STEP, Outage, Trace, TraceError, mark_outages
from saleor_scaling.features import STEPS_PER_DAY
from saleor_scaling.labels import CapacityEstimate, estimate_capacity_per_instance
from saleor_scaling.policy import read_floor
from saleor_scaling.series import FloatArray, Metric, MetricHistory, drop_impossible_values, floor_to_step

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client
else:
    AutoScalingClient = CloudWatchClient = S3Client = Any

LOAD_BALANCER_PATTERN = re.compile(r"^app/[A-Za-z0-9-]+/[0-9a-f]+$")
"""The ALB's CloudWatch dimension (template.yaml's ExistingLoadBalancerFullName pattern)."""
LOAD_BALANCER_ARN = re.compile(r"^arn:aws[a-z-]*:elasticloadbalancing:[^:]*:\d*:loadbalancer/(app/.+)$")
MAX_BUCKET_DAYS = 5 * 366
"""The most days one --from-bucket run reads (one GET each)."""


class SourceError(TraceError):
    """The shop's history cannot be read as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ShopHistory:
    """What a source read: the trace the runner replays and the shop's own configuration."""

    trace: Trace
    history: MetricHistory
    """The 5-minute metrics as read (impossible values dropped), the capacity's evidence."""
    min_size: int | None
    max_size: int | None
    capacity: CapacityEstimate
    source: str
    minute_days: float
    """Days of the trace with 1-minute RequestCount; the rest is 5-minute data."""
    notes: list[str] = field(default_factory=list)

    def config_overrides(self) -> dict[str, Any]:
        """The BacktestConfig fields this shop sets: its sizes, its learned capacity per
        instance and its own scale (1: the counts are the shop's)."""
        overrides: dict[str, Any] = {
            "capacity_per_instance": self.capacity.requests_per_minute,
            "scale_factor": 1.0,
        }
        if self.min_size is not None:
            overrides["min_size"] = self.min_size
        if self.max_size is not None:
            overrides["max_size"] = self.max_size
        return overrides

    def describe(self) -> str:
        trace = self.trace
        known = trace.known_share()
        learned = "learned" if self.capacity.learned else "not learned"
        lines = [
            f"{self.source}: {trace.days:.1f} days from {_iso(trace.start)} "
            f"({self.minute_days:.1f} at 1 minute, {trace.days - self.minute_days:.1f} at 5 minutes), "
            f"{known:.0%} of minutes known",
            f"group MinSize {self.min_size} MaxSize {self.max_size}; capacity per instance "
            f"{self.capacity.requests_per_minute:.1f} requests/minute ({learned}: {self.capacity.reason})",
            *self.notes,
        ]
        return "\n".join(lines)


def load_balancer_dimension(text: str) -> str:
    """The ALB's CloudWatch dimension `app/NAME/ID`, from itself or from the ALB's ARN."""
    value = text.strip()
    arn = LOAD_BALANCER_ARN.match(value)
    if arn:
        value = arn.group(1)
    if not LOAD_BALANCER_PATTERN.match(value):
        raise SourceError(
            f"--load-balancer {text!r} is not an ALB's CloudWatch dimension: expected app/NAME/ID "
            "(e.g. app/saleor-alb/50dc6c495c0c9188, the part of the ALB's ARN after ':loadbalancer/')"
        )
    return value


def window(
    now: int, days: float | None, start: int | None, end: int | None, default_days: float
) -> tuple[int, int]:
    """[start, end) on the 5-minute grid: `end` (default: the last complete bucket before
    now, as retraining reads) back `days` (or from `start`)."""
    last = floor_to_step(now) - STEP_SECONDS
    stop = last if end is None else min(floor_to_step(end), last)
    if start is not None:
        first = -(-start // STEP_SECONDS) * STEP_SECONDS
    else:
        span = default_days if days is None else days
        if span <= 0:
            raise SourceError(f"--days {span:g} must be > 0")
        first = floor_to_step(stop - span * DAY_SECONDS)
    if first >= stop:
        raise SourceError(f"the window {_iso(first)} to {_iso(stop)} is empty")
    return first, stop


def from_cloudwatch(
    cloudwatch: CloudWatchClient,
    autoscaling: AutoScalingClient,
    group_name: str,
    load_balancer: str,
    *,
    now: int | None = None,
    days: float | None = None,
    start: int | None = None,
    end: int | None = None,
    configured_capacity: float = 1000.0,
    target_cpu_percent: float = 70.0,
    timezone: str = "UTC",
    outages: tuple[Outage, ...] = (),
    min_size: int | None = None,
    max_size: int | None = None,
) -> ShopHistory:
    """The last `days` days (default and most: 63) of the shop's metrics from CloudWatch,
    `now` being the clock the retention is judged by (None: this host's)."""
    now = int(time.time()) if now is None else now
    dimension = load_balancer_dimension(load_balancer)
    retention_days = FIVE_MINUTE_RETENTION_SECONDS / DAY_SECONDS
    first, stop = window(now, days, start, end, retention_days)
    oldest = -(-(now - FIVE_MINUTE_RETENTION_SECONDS) // STEP_SECONDS) * STEP_SECONDS
    if (days is not None and days > retention_days) or (start is not None and first < oldest):
        raise SourceError(
            f"the window starts {(now - first) / DAY_SECONDS:.1f} days ago, beyond CloudWatch's 63-day "
            "retention of 5-minute data (older data is hourly, too coarse to replay); read older "
            "history from the S3 backup the nightly job writes: --from-bucket BUCKET"
        )
    first = max(first, oldest)  # --days 63 (the default): all CloudWatch still holds
    if first >= stop:
        raise SourceError(
            f"the window ends {_iso(stop)}, before the oldest 5-minute data CloudWatch keeps (63 days); "
            "read older history from the S3 backup: --from-bucket BUCKET"
        )
    group_min, group_max = _group_sizes(autoscaling, group_name, min_size, max_size, required=True)
    metrics = CloudWatchMetrics(cloudwatch, group_name, dimension, busiest_minute=False)
    one_minute_from = -(-(now - ONE_MINUTE_RETENTION_SECONDS) // STEP_SECONDS) * STEP_SECONDS
    history = MetricHistory.empty(first, 0)
    minutes = np.full((stop - first) // 60, np.nan)
    for day_start in range(first - first % DAY_SECONDS, stop, DAY_SECONDS):
        lo, hi = max(day_start, first), min(day_start + DAY_SECONDS, stop)
        history = history.combine(metrics.fetch(lo, hi, now))
        fine = max(lo, one_minute_from)
        if fine < hi:
            offset = (fine - first) // 60
            minutes[offset : offset + (hi - fine) // 60] = metrics.request_minutes(fine, hi, now)
    history, dropped = drop_impossible_values(history.window(first, stop))
    with np.errstate(invalid="ignore"):
        impossible = ~np.isnan(minutes) & (~np.isfinite(minutes) | (minutes < 0))
    # A corrupt minute makes its whole step missing (an absent minute would read as idle).
    corrupt_steps = np.repeat(impossible.reshape(-1, MINUTES_PER_STEP).any(axis=1), MINUTES_PER_STEP)
    minutes[corrupt_steps] = np.nan
    history[Metric.REQUESTS][corrupt_steps[::MINUTES_PER_STEP]] = np.nan
    dropped += int(np.sum(impossible))
    if not np.any(np.isfinite(history[Metric.REQUESTS])) and not np.any(np.isfinite(minutes)):
        raise SourceError(
            f"CloudWatch has no RequestCount for load balancer {dimension} from {_iso(first)} to "
            f"{_iso(stop)}: check --load-balancer (its app/NAME/ID) and the region; an ALB "
            "publishes nothing while no requests flow"
        )
    notes = [f"{dropped} impossible values dropped as missing data"] if dropped else []
    source = f"CloudWatch {group_name} / {dimension}"
    return _shop_history(
        history,
        minutes,
        source,
        one_minute_from,
        notes,
        group_min,
        group_max,
        configured_capacity,
        target_cpu_percent,
        timezone,
        outages,
    )


def from_bucket(
    s3: S3Client,
    autoscaling: AutoScalingClient | None,
    bucket: str,
    group_name: str,
    *,
    now: int | None = None,
    prefix: str | None = None,
    days: float | None = None,
    start: int | None = None,
    end: int | None = None,
    configured_capacity: float = 1000.0,
    target_cpu_percent: float = 70.0,
    timezone: str = "UTC",
    outages: tuple[Outage, ...] = (),
    min_size: int | None = None,
    max_size: int | None = None,
) -> ShopHistory:
    """The shop's history from the nightly job's S3 backup (`history/<group>/YYYY/MM/DD.json.gz`
    unless `prefix`): every stored day by default, or the last `days` stored, or [start, end)."""
    now = int(time.time()) if now is None else now
    key_prefix = prefix or f"history/{group_name}"
    archive = S3HistoryArchive(s3, bucket, key_prefix)
    stored = archive.stored_days()
    if not stored:
        raise SourceError(
            f"s3://{bucket}/{key_prefix}/ holds no history (YYYY/MM/DD.json.gz objects): is the group "
            "name right, and has the nightly retrain run yet?"
        )
    if days is None and start is None:
        start = stored[0]
    # --days counts back from the newest stored day: the backup may have stopped long ago.
    first, stop = window(now, days, start, stored[-1] + DAY_SECONDS if end is None else end, 0.0)
    first, stop = max(first, stored[0]), min(stop, stored[-1] + DAY_SECONDS)
    if first >= stop:
        raise SourceError(
            f"s3://{bucket}/{key_prefix}/ holds {_iso(stored[0])} to {_iso(stored[-1] + DAY_SECONDS)}; "
            "the window asked for selects none of it"
        )
    if (stop - first) / DAY_SECONDS > MAX_BUCKET_DAYS:
        raise SourceError(f"{(stop - first) / DAY_SECONDS:.0f} days asked; at most {MAX_BUCKET_DAYS} per run")
    group_min, group_max = _group_sizes(autoscaling, group_name, min_size, max_size, required=False)
    history, dropped = drop_impossible_values(archive.read(first, stop))
    if not np.any(np.isfinite(history[Metric.REQUESTS])):
        raise SourceError(
            f"s3://{bucket}/{key_prefix}/ has no RequestCount from {_iso(first)} to {_iso(stop)}"
        )
    notes = [f"{dropped} impossible values dropped as missing data"] if dropped else []
    if archive.corrupt_days:
        notes.append(f"unreadable backup objects read as missing data: {', '.join(archive.corrupt_days)}")
    return _shop_history(
        history,
        np.full((stop - first) // 60, np.nan),
        f"s3://{bucket}/{key_prefix}",
        stop,
        notes,
        group_min,
        group_max,
        configured_capacity,
        target_cpu_percent,
        timezone,
        outages,
    )


def per_minute_demand(history: MetricHistory, minutes: FloatArray) -> FloatArray:
    """Requests per minute over `history`'s steps: the 1-minute counts where a step has any
    (absent minutes of such a step idle), else its busiest minute first and the rest of its
    Sum spread evenly (the Sum alone: spread evenly), NaN where the step has nothing."""
    steps = len(history)
    fine = np.asarray(minutes, dtype=np.float64).reshape(steps, MINUTES_PER_STEP)
    has_minutes = np.any(np.isfinite(fine), axis=1)
    total = history[Metric.REQUESTS]
    busiest = np.clip(np.nan_to_num(history.busiest_minute(), nan=-1.0), total / MINUTES_PER_STEP, total)
    # np.clip keeps NaN totals NaN; a step without a busiest minute clips to the even share.
    rest = (total - busiest) / (MINUTES_PER_STEP - 1)
    coarse = np.column_stack([busiest] + [rest] * (MINUTES_PER_STEP - 1))
    demand = np.where(has_minutes[:, None], np.nan_to_num(fine, nan=0.0), coarse)
    return np.asarray(demand.reshape(-1), dtype=np.float64)


def _shop_history(
    history: MetricHistory,
    minutes: FloatArray,
    source: str,
    one_minute_from: int,
    notes: list[str],
    min_size: int | None,
    max_size: int | None,
    configured_capacity: float,
    target_cpu_percent: float,
    timezone: str,
    outages: tuple[Outage, ...],
) -> ShopHistory:
    demand = per_minute_demand(history, minutes)
    known = np.flatnonzero(np.isfinite(demand.reshape(-1, MINUTES_PER_STEP)).any(axis=1))
    first_step, last_step = int(known[0]), int(known[-1]) + 1
    demand = demand[first_step * MINUTES_PER_STEP : last_step * MINUTES_PER_STEP]
    history = history.window(
        history.start + first_step * STEP_SECONDS, history.start + last_step * STEP_SECONDS
    )
    coarse = history.start < one_minute_from
    minute_days = max(0, history.end - max(history.start, one_minute_from)) / DAY_SECONDS
    trace = Trace(
        source,
        history.start,
        demand,
        source_step_minutes=MINUTES_PER_STEP if coarse else 1,
        resample="busiest-first" if coarse else "none",
        timezone=timezone,
    )
    trace = mark_outages(trace, outages)
    fine = np.isfinite(minutes).reshape(-1, MINUTES_PER_STEP).any(axis=1)[first_step:last_step]
    even = np.isfinite(history[Metric.REQUESTS]) & np.isnan(history.busiest_minute()) & ~fine
    if np.any(even):
        notes = [
            *notes,
            f"{np.sum(even) / STEPS_PER_DAY:.1f} days of 5-minute steps without a busiest minute: "
            "each spread evenly, so a busy minute inside them is not seen (the simulated short "
            "minutes there are a lower bound)",
        ]
    capacity = estimate_capacity_per_instance(history, target_cpu_percent, configured_capacity)
    return ShopHistory(
        trace=trace,
        history=history,
        min_size=min_size,
        max_size=max_size,
        capacity=capacity,
        source=source,
        minute_days=minute_days,
        notes=notes,
    )


def _group_sizes(
    client: AutoScalingClient | None,
    group_name: str,
    min_size: int | None,
    max_size: int | None,
    *,
    required: bool,
) -> tuple[int | None, int | None]:
    """The operator's MinSize and the MaxSize, explicit values first. The group is read
    when a size is missing, or always when `required` (CloudWatch: it must exist)."""
    if client is None or (not required and min_size is not None and max_size is not None):
        return min_size, max_size
    try:
        facts = AutoScalingGroup(client, group_name).describe()
    except GroupNotFoundError as error:
        hint = "" if required else "; give --min-size and --max-size to replay a group that is gone"
        raise SourceError(f"--group {group_name!r}: {error} in this account and region{hint}") from None
    # Read at no particular time: the lease's base is the operator's whether or not it expired.
    operator_min = read_floor(facts, math.inf, 0).group.min_size
    return (
        operator_min if min_size is None else min_size,
        facts.max_size if max_size is None else max_size,
    )


def _iso(epoch_seconds: float) -> str:
    if not math.isfinite(epoch_seconds):
        return "?"
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
