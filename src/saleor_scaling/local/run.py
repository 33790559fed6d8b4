"""The whole loop on a real trace, with no AWS account: `make local`.

    python -m saleor_scaling.local.run [--trace nasa] [--history-days 21] [--replay-hours 24]

1. A real request trace (`../shared/traces/`) is scaled so that its peak needs
   `--peak-instances` of a 10-instance group, and shifted in time so that its history ends
   at the nightly slot of `events/retrain.json`.
2. Emulated AWS (moto, in process) holds the shop: an Auto Scaling group behind an ALB,
   the versioned model bucket and the SNS topic. The shop's past, as reactive target
   tracking alone would have run it (simulated minute by minute with boot delay), becomes
   its CloudWatch metrics (the last 13 days; PutMetricData refuses older ones) and its S3
   history backup (older days, as earlier nights would have left them).
3. The real retrain handler runs with `events/retrain.json`.
4. The real predict handler runs every 5 simulated minutes for `--replay-hours`, in
   forecast-and-scale mode, against the shop as it evolves: each closed 5-minute bucket
   is published to CloudWatch before the run that reads it; the capacity predict sets is
   applied to the simulated group (instances serve after the boot delay) and target
   tracking keeps acting beside it, as on AWS. Each decision is printed.
5. The report: the replayed day against reactive alone on the same minutes, then the
   backtest of the whole trace (table, JSON and plot in `--out`).

The handlers' own log lines and metrics go to `<out>/lambda-logs.jsonl`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from saleor_scaling.backtest.history import metric_history
from saleor_scaling.backtest.traces import MINUTES_PER_STEP, Trace, TraceError, load_trace
from saleor_scaling.simulation.simulator import (
    GroupSettings,
    SimulatedGroup,
    SimulationRecord,
    TargetTracking,
    TargetTrackingSettings,
    simulate,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DAY = 86400
CLOUDWATCH_DAYS = 13


@dataclass
class Replay:
    """The predict Lambda as the simulator's decision maker: each 5 minutes, publish the
    closed buckets, invoke the real handler, apply what it set to the simulated group."""

    session: Any
    shop: Any
    handler: Any
    start: int
    """Epoch of the replay's minute 0."""
    demand: Sequence[float]
    settings: GroupSettings
    log: IO[str]
    published_steps: int = 0
    serving: list[int] = field(default_factory=list)
    billed: list[int] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def on_minute(self, minute: int, group: SimulatedGroup) -> None:
        self.serving.append(group.serving(minute))
        self.billed.append(group.desired)

    def decide(self, minute: int, group: SimulatedGroup, cpu: Sequence[float]) -> None:
        if minute == 0:
            self._sync_group(group)
            return
        self._publish_closed_buckets(minute, cpu)
        self._sync_group(group)
        from saleor_scaling.local.emulator import LocalLambdaContext, scheduled_event

        now = self.start + minute * 60
        with contextlib.redirect_stdout(self.log):
            result = self.handler.lambda_handler(scheduled_event(_iso(now)), LocalLambdaContext("predict"))
        self.decisions.append(result)
        described = self._describe()
        before = group.desired
        # What predict set on the (emulated) group is what the simulated fleet does: the
        # MinSize floor first, so that target tracking cannot undercut it.
        group.floor = int(described["MinSize"])
        if int(described["DesiredCapacity"]) != before:
            group.set_desired(minute, int(described["DesiredCapacity"]), "predict")
        print(_decision_line(now, result, float(self.demand[minute - 1]), before, group.desired))

    def _publish_closed_buckets(self, minute: int, cpu: Sequence[float]) -> None:
        from saleor_scaling.local.emulator import publish_history

        closed = minute // MINUTES_PER_STEP
        if closed <= self.published_steps:
            return
        lo, hi = self.published_steps * MINUTES_PER_STEP, closed * MINUTES_PER_STEP
        window = SimulationRecord(
            demand=np.asarray(self.demand[lo:hi], dtype=np.float64),
            serving=np.asarray(self.serving[lo:hi]),
            billed=np.asarray(self.billed[lo:hi]),
            desired=np.asarray(self.billed[lo:hi]),
            cpu=np.asarray(cpu[lo:hi], dtype=np.float64),
        )
        history = metric_history(self.start + lo * 60, window, self.settings)
        publish_history(self.session, self.shop, history, self.start + minute * 60)
        self.published_steps = closed

    def _sync_group(self, group: SimulatedGroup) -> None:
        """Target tracking's changes to the simulated group are changes to the real one."""
        if self._desired_in_aws() != group.desired:
            self.session.client("autoscaling").set_desired_capacity(
                AutoScalingGroupName=self.shop.group_name, DesiredCapacity=group.desired, HonorCooldown=False
            )

    def _desired_in_aws(self) -> int:
        return int(self._describe()["DesiredCapacity"])

    def _describe(self) -> dict[str, Any]:
        groups = self.session.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.shop.group_name]
        )["AutoScalingGroups"]
        described: dict[str, Any] = dict(groups[0])
        return described


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        trace = load_trace(args.trace)
    except TraceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if trace.source_step_minutes > MINUTES_PER_STEP:
        # The emulated CloudWatch is fed minutes; spread from a coarser step they would show
        # predict part of a step that has not closed (the backtest's `observed` rule).
        print(
            f"error: {trace.name} has {trace.source_step_minutes}-minute steps; the local run feeds "
            "emulated CloudWatch per minute, which would show predict part of each step before it "
            f'closed. Run the backtest instead (make backtest ARGS="{args.trace}"): it shows coarse '
            "steps only once closed (docs/backtest.md, 'What a strategy sees of a coarse trace').",
            file=sys.stderr,
        )
        return 2
    retrain_event = json.loads((REPO_ROOT / "events" / "retrain.json").read_text())
    retrain_at = int(datetime.fromisoformat(retrain_event["time"].replace("Z", "+00:00")).timestamp())
    history_minutes = args.history_days * 1440 + (retrain_at % DAY) // 60
    replay_minutes = int(args.replay_hours * 60) // MINUTES_PER_STEP * MINUTES_PER_STEP
    if trace.minutes < history_minutes + replay_minutes:
        print(f"error: {trace.name} has {trace.days:.1f} days, fewer than asked for", file=sys.stderr)
        return 2
    scaled = trace.scaled(args.peak_instances, args.capacity_per_instance)
    demand = scaled.demand[: history_minutes + replay_minutes]
    # The trace's first midnight becomes a UTC midnight, so its daily cycle keeps its hours.
    start = retrain_at - history_minutes * 60
    group_settings = GroupSettings(
        max_size=args.max_size,
        boot_delay_minutes=args.boot_minutes,
        capacity_per_instance=args.capacity_per_instance,
    )
    tracking = TargetTrackingSettings(target_requests_per_instance=args.capacity_per_instance)

    print(
        f"trace {scaled.name}: {scaled.days:.0f} days, scaled x{scaled.scale_factor:.2f} to peak at "
        f"{args.peak_instances} x {args.capacity_per_instance:.0f} requests/minute"
    )
    print(
        f"history: {args.history_days} days + {(retrain_at % DAY) // 60} minutes "
        "under reactive scaling alone, "
        f"ending {_iso(retrain_at)} (the time of events/retrain.json)"
    )
    past = simulate(demand[:history_minutes], group_settings, reactive=TargetTracking(tracking))
    past_history = metric_history(start, past, group_settings)

    with _emulated_aws() as session, (args.out / "lambda-logs.jsonl").open("w") as log:
        from saleor_scaling.adapters.history_archive import S3HistoryArchive
        from saleor_scaling.local.emulator import (
            LocalLambdaContext,
            create_shop,
            load_function,
            publish_history,
        )

        shop = create_shop(session, max_size=args.max_size, desired=int(past.desired[-1]))
        # The replay's events carry the trace's time, not the wall clock's: the one place
        # the event clock check is turned off, explicitly.
        for name, value in shop.environment(
            SCALING_MODE="forecast-and-scale", EVENT_CLOCK_CHECK="off"
        ).items():
            os.environ[name] = value
        cutoff = retrain_at - CLOUDWATCH_DAYS * DAY
        cutoff -= cutoff % DAY
        publish_history(session, shop, past_history.window(cutoff, retrain_at), retrain_at)
        backed_up = S3HistoryArchive(session.client("s3"), shop.bucket, f"history/{shop.group_name}").write(
            past_history.window(start, cutoff)
        )
        print(
            f"emulated AWS: group {shop.group_name} (max {args.max_size}), bucket {shop.bucket}; "
            f"{CLOUDWATCH_DAYS} days in CloudWatch, {len(backed_up)} older days in the S3 history backup"
        )

        with contextlib.redirect_stdout(log):
            retrain, predict = load_function("retrain"), load_function("predict")
        _follow_stdout("retrain", "predict")
        started = time.perf_counter()
        with contextlib.redirect_stdout(log):
            trained = retrain.lambda_handler(
                retrain_event, LocalLambdaContext("retrain", memory_limit_in_mb=1024)
            )
        print(f"\nretrain ({time.perf_counter() - started:.1f} s): {trained['status']}: {trained['reason']}")
        if trained["status"] != "promoted":
            print("predict will stay in its safe fallback (reactive scaling alone)")

        print(
            f"\npredict every 5 minutes for {args.replay_hours:g} hours "
            "(forecast-and-scale, target tracking on):"
        )
        print(
            f"{'time (UTC)':<17} {'load/min':>9} {'forecast':>9} {'headroom':>8} {'sized':>7} "
            f"{'floor':>5} {'action':<10} desired"
        )
        replay = Replay(
            session, shop, predict, retrain_at, demand[history_minutes:].tolist(), group_settings, log
        )
        live = simulate(
            demand[history_minutes:],
            group_settings,
            reactive=TargetTracking(tracking),
            predictive=replay,
            initial=int(past.desired[-1]),
            on_minute=replay.on_minute,
        )
    reactive_only = simulate(
        demand[history_minutes:],
        group_settings,
        reactive=TargetTracking(tracking),
        initial=int(past.desired[-1]),
    )
    print()
    print(_compare(live, reactive_only, group_settings, replay.decisions))
    if not args.no_backtest:
        _backtest(args, scaled)
    print(f"\nhandler logs and metrics: {args.out / 'lambda-logs.jsonl'}")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", default="nasa", help="short name (nasa, nab-elb, nyc-taxi) or a CSV path")
    parser.add_argument("--history-days", type=int, default=21, help="days of history before the retrain")
    parser.add_argument("--replay-hours", type=float, default=24.0, help="hours of predict runs after it")
    parser.add_argument("--peak-instances", type=float, default=8.0)
    parser.add_argument("--max-size", type=int, default=10)
    parser.add_argument(
        "--capacity-per-instance", type=float, default=1000.0, help="requests/minute at 70 %% CPU"
    )
    parser.add_argument("--boot-minutes", type=int, default=5, help="launch to in service")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "local")
    parser.add_argument("--no-backtest", action="store_true", help="stop after the replay")
    args = parser.parse_args(argv)
    if args.history_days < 1 or args.replay_hours <= 0:
        parser.error("--history-days and --replay-hours must be positive")
    return args


@contextlib.contextmanager
def _emulated_aws() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    # Emulated credentials only: nothing here may reach a real account.
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1"
    )
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1")


def _decision_line(now: int, result: dict[str, Any], load: float, before: int, after: int) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M")
    forecast = result.get("forecast") or {}
    decision = result.get("decision") or {}
    mean, upper = forecast.get("demand_mean_per_minute"), forecast.get("demand_upper_per_minute")
    headroom = forecast.get("headroom")
    action = decision.get("action", result.get("status", "?"))
    change = f"{before} -> {after}" if after != before else f"{after}"
    note = "" if result.get("status") != "fallback" else f"  ({result.get('reason', '')})"
    floor = result.get("reactive_floor")
    return (
        f"{stamp:<17} {load:9.0f} {'-' if mean is None else f'{mean:.0f}':>9} "
        f"{'-' if headroom is None else f'x{headroom:.2f}':>8} {'-' if upper is None else f'{upper:.0f}':>7} "
        f"{'' if floor is None else floor:>5} {action:<10} {change}{note}"
    )


def _compare(
    live: SimulationRecord,
    reactive: SimulationRecord,
    settings: GroupSettings,
    decisions: list[dict[str, Any]],
) -> str:
    def figures(record: SimulationRecord) -> tuple[float, float, float, int]:
        demand = np.asarray(record.demand)
        known = np.isfinite(demand)
        capacity = record.serving * settings.capacity_per_instance
        short = known & (demand > capacity)
        unserved = float(np.sum(np.maximum(demand[known] - capacity[known], 0.0)))
        return (
            float(np.mean(short[known])),
            unserved,
            float(np.sum(record.billed)) / 60.0,
            len(record.actions),
        )

    rows = [("predictive + reactive (real handlers)", figures(live)), ("reactive alone", figures(reactive))]
    lines = [f"The replayed {len(live.demand) / 60:g} hours, same minutes, same boot delay:"]
    lines.append(
        f"  {'strategy':<38} {'under-provisioned':>17} {'unserved req':>13} {'inst-hours':>10} {'actions':>7}"
    )
    for name, (share, unserved, hours, actions) in rows:
        lines.append(f"  {name:<38} {share:17.2%} {unserved:13.0f} {hours:10.1f} {actions:7d}")
    statuses: dict[str, int] = {}
    for decision in decisions:
        statuses[decision.get("status", "?")] = statuses.get(decision.get("status", "?"), 0) + 1
    lines.append(
        "  predict runs: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    )
    errors = [abs(d["forecast_error"]) for d in decisions if d.get("forecast_error") is not None]
    if errors:
        lines.append(
            f"  forecast error once observed: mean {np.mean(errors):.2f} instances over {len(errors)} runs"
        )
    return "\n".join(lines)


def _backtest(args: argparse.Namespace, trace: Trace) -> None:
    from saleor_scaling.backtest import BacktestConfig, plot, run_backtest

    print(f"\nbacktest of the whole {trace.name} trace ({trace.days:.0f} days), every strategy:")
    started = time.perf_counter()
    config = BacktestConfig(
        peak_instances=args.peak_instances,
        max_size=args.max_size,
        capacity_per_instance=args.capacity_per_instance,
        boot_delay_minutes=args.boot_minutes,
    )
    report = run_backtest(load_trace(args.trace), config)
    print(report.table())
    (args.out / f"backtest-{trace.name}.json").write_text(json.dumps(report.to_json(), indent=2))
    plot(report, args.out / f"backtest-{trace.name}.png")
    print(f"({time.perf_counter() - started:.0f} s; JSON and plot in {args.out})")


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time, so that redirect_stdout reaches a
    handler's log lines however often the handler module was imported."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _follow_stdout(*logger_names: str) -> None:
    # Powertools keeps the stream handler of a logger's first Logger(); a second import of
    # the handler (a test, an earlier replay in the same process) would log to the old one.
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(_CurrentStdout())


if __name__ == "__main__":
    sys.exit(main())
