"""`saleor-backtest` / `python -m saleor_scaling.backtest`: run the backtest on a trace."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from saleor_scaling.adapters.cloudwatch import MetricsUnavailableError
from saleor_scaling.backtest import sources, traces
from saleor_scaling.backtest.config import STRATEGIES, BacktestConfig
from saleor_scaling.backtest.frontier import plot_frontier, render_sweep, run_sweep
from saleor_scaling.backtest.planned import load_events
from saleor_scaling.backtest.plot import plot
from saleor_scaling.backtest.runner import run_backtest
from saleor_scaling.backtest.traces import TRACE_FILES, Trace, TraceError, load_trace, traces_dir
from saleor_scaling.backtest.tuning import tune
from saleor_scaling.headroom import CONDITIONS
from saleor_scaling.settings import (
    MAX_SHORTFALL_GOAL_PERCENT,
    ConfigurationError,
    PolicySettings,
    ScalingMode,
)
from saleor_scaling.simulation.simulator import WarmPoolSettings

DESCRIPTION = """\
Replay a real request trace against a simulated Auto Scaling group, side by side:
reactive target tracking alone (as AWS implements it), the predict function's Random
Forest (retrained every simulated night on the past only) plus target tracking, a
seasonal-naive forecast with the same policy plus target tracking, and the oracle that
knows the future (the cheapest capacity never under-provisioned). Prints a table; --json
and --plot write the figures for machines and a picture for people.
"""

EPILOG = f"""\
traces: {", ".join(sorted(TRACE_FILES))} (in $SALEOR_SHARED_DIR/traces or <repo>/../shared/traces),
a file name there, or a path to a CSV whose header line is one of:
  minute,count     {traces.FORMATS["minute,count"]}
  timestamp,value  {traces.FORMATS["timestamp,value"]}
Your own shop instead of a trace (AWS credentials of the shop's account):
  --from-cloudwatch --group NAME --load-balancer app/NAME/ID [--days N]   (N <= 63)
  --from-bucket BUCKET --group NAME [--days N]   (the nightly job's S3 history backup)
Definitions and measured results: docs/backtest.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saleor-backtest",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("trace", nargs="?", help="trace name or CSV path (see below)")
    parser.add_argument("--trace", dest="trace_option", metavar="TRACE", help="the same, as an option")
    parser.add_argument("--list-traces", action="store_true", help="list the shared traces and exit")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of demand and capacity")
    parser.add_argument(
        "--days", type=float, help="only the first DAYS days of the trace (own history: the last DAYS days)"
    )
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"comma-separated subset of {','.join(STRATEGIES)} (reactive and oracle always run)",
    )
    add_history_options(parser)
    parser.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="planned events (a calendar as `registry_cli events` writes it, times in the trace's clock): "
        "predict honours them; the report adds figures inside and outside them and the AWS peer "
        "with a scheduled action",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="sweep every strategy's knobs instead (ours: HeadroomQuantile x reactive target x scale-in "
        "window x MaxScaleInStep 1 or 0 x ScaleInWindowHoldsReactiveFloor, or forecast-only; reactive "
        "target, AWS target and buffer, PHPA target and smoothing, Crane margin), in --workers "
        "processes: tables at equal shortfall "
        "and each frontier's cost at 0.2-10 %% short; --plot draws the cost-against-shortfall "
        "frontier, --json writes every point",
    )

    parser.add_argument(
        "--known-hours",
        action="store_true",
        help="with --sweep: also a reference, ours fed each hour's true mean load (what AWS perfect-hour "
        "knows) at every setting of our other knobs, so that where AWS perfect-hour is cheaper the "
        "sweep says whether knowing the hour or scaling explains it (doubles ours' simulations)",
    )
    parser.add_argument(
        "--target-shortfall",
        type=_percent,
        metavar="PCT",
        help="the share of minutes short you accept, up to 20%% (e.g. 1%%). Alone: TargetShortfallPercent as "
        "deployed, each night's model sized with the HeadroomQuantile the nightly replay of its "
        "held-out days chose. With --sweep: prints the cheapest setting of ours that met it and the "
        "sam deploy --parameter-overrides that deploy it, this goal as TargetShortfallPercent included",
    )

    shop = parser.add_argument_group("the simulated shop")
    shop.add_argument("--peak-instances", type=float, default=8.0, help="instances the robust peak needs (8)")
    shop.add_argument(
        "--peak-percentile",
        type=float,
        default=99.9,
        help="percentile of 5-minute demand taken as the peak (99.9)",
    )
    shop.add_argument("--min-size", type=int, default=1, help="group MinSize (1)")
    shop.add_argument("--max-size", type=int, default=10, help="group MaxSize (10)")
    shop.add_argument(
        "--capacity",
        type=float,
        default=1000.0,
        help="requests/minute one instance serves at the target CPU = requests-per-target target (1000)",
    )
    shop.add_argument("--boot-delay", type=int, default=5, help="minutes from launch to serving (5)")
    shop.add_argument(
        "--warm-pool",
        metavar="STATE:SIZE",
        help="a warm pool of SIZE instances, STATE Stopped, Hibernated or Running (ready after 3, 2 or 1 "
        "min; STATE:SIZE:MINUTES to set it); its cost is counted in the instance-hours (none)",
    )
    shop.add_argument(
        "--warmup", type=int, help="minutes from launch to counting in target tracking's metrics (boot delay)"
    )

    reactive = parser.add_argument_group("target tracking")
    reactive.add_argument(
        "--scale-in-ratio", type=float, default=0.9, help="low alarm threshold as a share of the target (0.9)"
    )
    reactive.add_argument(
        "--alarm-delay",
        type=int,
        default=1,
        help="minutes before a 1-minute datapoint reaches the alarms (1)",
    )
    reactive.add_argument(
        "--no-reactive-scale-in",
        action="store_true",
        help="disable target tracking scale-in next to the predict function (DisableScaleIn)",
    )

    policy = parser.add_argument_group("the predict function's policy (PolicySettings)")
    defaults = PolicySettings()
    policy.add_argument(
        "--headroom-quantile", type=float, default=defaults.headroom_quantile, help="(%(default)s)"
    )
    policy.add_argument(
        "--max-scale-in-step", type=int, default=defaults.max_scale_in_step, help="(%(default)s)"
    )
    policy.add_argument(
        "--stabilization",
        type=int,
        default=defaults.scale_in_stabilization_minutes,
        help="scale-in stabilization window, minutes (%(default)s)",
    )
    policy.add_argument(
        "--window-holds-floor",
        choices=("on", "off"),
        default="on" if defaults.window_holds_reactive_floor else "off",
        help="the window remembers each run's reactive floor (on), or only the forecast, planned "
        "events and bounds (off: a spike's floor sizes its own run only) (%(default)s)",
    )
    policy.add_argument("--target-cpu", type=float, default=defaults.target_cpu_percent, help="(%(default)s)")
    policy.add_argument(
        "--horizon-steps", type=int, help="forecast target, steps after the anchor (2 + boot delay in steps)"
    )

    training = parser.add_argument_group("nightly retraining")
    config_defaults = BacktestConfig()
    training.add_argument(
        "--n-estimators", type=int, default=config_defaults.n_estimators, help="(%(default)s)"
    )
    training.add_argument("--max-depth", type=int, default=config_defaults.max_depth, help="(%(default)s)")
    training.add_argument(
        "--training-window-days",
        type=int,
        default=config_defaults.training_window_days,
        help="days each night learns from, 0 for all history (%(default)s)",
    )
    training.add_argument(
        "--min-history-days",
        type=int,
        default=config_defaults.min_history_days,
        help="refuse to train on less (%(default)s)",
    )
    training.add_argument(
        "--holdout-days",
        type=int,
        default=config_defaults.holdout_days,
        help="days held out from the challenger to measure the headroom on (%(default)s)",
    )
    training.add_argument(
        "--headroom-condition",
        choices=CONDITIONS,
        default=config_defaults.headroom_condition,
        help="what the headroom table is scaled by, HEADROOM_CONDITION (%(default)s)",
    )
    _add_speed_options(parser, config_defaults)
    return parser


def _add_speed_options(parser: argparse.ArgumentParser, defaults: BacktestConfig) -> None:
    """--retrain-every and --workers (issue 13 part 4), kept together."""
    speed = parser.add_argument_group("replay schedule and speed")
    speed.add_argument(
        "--retrain-every",
        type=int,
        default=defaults.retrain_every_days,
        metavar="DAYS",
        help="replay a retrain every DAYS days instead of nightly; a model serves until the next "
        "retrain (%(default)s: nightly, as deployed and as the documented figures)",
    )
    speed.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes training nights in parallel (one per CPU); the result does not depend on it",
    )


def config_from_args(args: argparse.Namespace) -> BacktestConfig:
    requested = {name.strip() for name in args.strategies.split(",") if name.strip()} | {"reactive", "oracle"}
    # Unknown names are kept so that BacktestConfig rejects them with the list of choices.
    strategies = tuple(name for name in STRATEGIES if name in requested) + tuple(
        sorted(requested - set(STRATEGIES))
    )
    return BacktestConfig(
        peak_instances=args.peak_instances,
        peak_percentile=args.peak_percentile,
        min_size=args.min_size,
        max_size=args.max_size,
        capacity_per_instance=args.capacity,
        boot_delay_minutes=args.boot_delay,
        warmup_minutes=args.warmup,
        warm_pool=WarmPoolSettings.parse(args.warm_pool) if args.warm_pool else None,
        horizon_steps=args.horizon_steps,
        policy=PolicySettings(
            mode=ScalingMode.FORECAST_AND_SCALE,
            headroom_quantile=args.headroom_quantile,
            max_scale_in_step=args.max_scale_in_step,
            scale_in_stabilization_minutes=args.stabilization,
            target_cpu_percent=args.target_cpu,
            window_holds_reactive_floor=args.window_holds_floor == "on",
        ),
        scale_in_ratio=args.scale_in_ratio,
        alarm_delay_minutes=args.alarm_delay,
        reactive_scale_in_with_predictive=not args.no_reactive_scale_in,
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        training_window_days=args.training_window_days,
        min_history_days=args.min_history_days,
        holdout_days=args.holdout_days,
        headroom_condition=args.headroom_condition,
        retrain_every_days=args.retrain_every,
        workers=args.workers,
        days=args.days,
        strategies=strategies,
        # With --sweep the goal picks among the sweep's settings instead (`tuning`).
        target_shortfall_percent=(
            None if args.target_shortfall is None or args.sweep else round(100 * args.target_shortfall, 6)
        ),
    )


# --- own history, trace window, scale and outages (issue 13 part 2) ---------------------


def add_history_options(parser: argparse.ArgumentParser) -> None:
    window = parser.add_argument_group("the trace's window, scale and known outages")
    window.add_argument("--start", metavar="ISO", help="only from this date or date-time (trace clock)")
    window.add_argument("--end", metavar="ISO", help="only before this date or date-time (trace clock)")
    window.add_argument(
        "--scale",
        type=float,
        metavar="FACTOR",
        help="multiply the counts by FACTOR instead of scaling to --peak-instances (own history: 1)",
    )
    window.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START/END",
        help="a known outage [START, END): missing data, not zero load (repeatable)",
    )
    window.add_argument("--outages", type=Path, metavar="FILE", help="known outages, one START/END per line")
    window.add_argument(
        "--max-idle-minutes",
        type=int,
        default=traces.MAX_IDLE_MINUTES,
        metavar="N",
        help="minute,count: a run of up to N absent minutes is idle (0), a longer one missing data "
        "(%(default)s)",
    )
    window.add_argument(
        "--timezone", metavar="ZONE", help="IANA zone of the calendar features (own history: ShopTimezone)"
    )
    own = parser.add_argument_group("your own shop's history (docs/backtest.md)")
    own.add_argument(
        "--from-cloudwatch",
        action="store_true",
        help="read the shop's metrics from CloudWatch (63 days at most)",
    )
    own.add_argument("--from-bucket", metavar="BUCKET", help="read the nightly job's S3 history backup")
    own.add_argument("--group", metavar="NAME", help="the Auto Scaling group")
    own.add_argument("--load-balancer", metavar="app/NAME/ID", help="the ALB's CloudWatch dimension (or ARN)")
    own.add_argument("--history-prefix", metavar="PREFIX", help="backup key prefix (history/<group>)")
    own.add_argument("--region", help="AWS region (default: the AWS configuration's)")


SHOP_SIZE_OPTIONS = ("min_size", "max_size")


def given_options(argv: Sequence[str] | None, names: Sequence[str]) -> set[str]:
    """Which of the options `names` (dests) the command line sets, defaults aside."""
    probe = build_parser()
    probe.set_defaults(**dict.fromkeys(names))
    values = probe.parse_args(argv)
    return {name for name in names if getattr(values, name) is not None}


def outages_from_args(args: argparse.Namespace) -> tuple[traces.Outage, ...]:
    outages = [traces.parse_outage(text) for text in args.outage]
    if args.outages is not None:
        outages.extend(traces.read_outages(args.outages))
    return tuple(outages)


def window_options(config: BacktestConfig, args: argparse.Namespace) -> BacktestConfig:
    """The trace window, explicit scale and time zone options on top of `config`."""
    if args.timezone is not None:
        try:
            ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"--timezone {args.timezone!r} is not an IANA time zone") from None
    return dataclasses.replace(
        config,
        start=args.start,
        end=args.end,
        scale_factor=args.scale if args.scale is not None else config.scale_factor,
        timezone=args.timezone,
    )


def load_own_history(
    args: argparse.Namespace, argv: Sequence[str] | None, now: float | None = None
) -> tuple[traces.Trace, BacktestConfig, str]:
    """The trace, configuration and summary of `--from-cloudwatch` / `--from-bucket`."""
    if not args.group:
        raise sources.SourceError(
            "--group NAME (the Auto Scaling group) is required with --from-cloudwatch/--from-bucket"
        )
    if args.from_cloudwatch and args.from_bucket:
        raise sources.SourceError("--from-cloudwatch and --from-bucket are alternatives: choose one")
    if args.from_cloudwatch and not args.load_balancer:
        raise sources.SourceError(
            "--from-cloudwatch needs --load-balancer app/NAME/ID (the ALB's CloudWatch dimension)"
        )
    base = config_from_args(args)
    given = given_options(argv, SHOP_SIZE_OPTIONS)
    session = boto3.session.Session(region_name=args.region)
    common: dict[str, Any] = {
        "now": None if now is None else int(now),
        "days": args.days,
        "start": None if args.start is None else traces.parse_time(args.start, "--start"),
        "end": None if args.end is None else traces.parse_time(args.end, "--end"),
        "configured_capacity": base.capacity_per_instance,
        "target_cpu_percent": base.policy.target_cpu_percent,
        "timezone": args.timezone or "UTC",
        "outages": outages_from_args(args),
        "min_size": args.min_size if "min_size" in given else None,
        "max_size": args.max_size if "max_size" in given else None,
    }
    if args.timezone is not None:
        window_options(base, args)  # validates the zone
    autoscaling = session.client("autoscaling")
    if args.from_cloudwatch:
        shop = sources.from_cloudwatch(
            session.client("cloudwatch"), autoscaling, args.group, args.load_balancer, **common
        )
    else:
        shop = sources.from_bucket(
            session.client("s3"),
            autoscaling,
            args.from_bucket,
            args.group,
            prefix=args.history_prefix,
            **common,
        )
    overrides = shop.config_overrides()
    if args.scale is not None:
        overrides["scale_factor"] = args.scale
    config = dataclasses.replace(base, days=None, **overrides)
    return shop.trace, config, shop.describe()


# --- end of own history options -----------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_traces:
        for name, file in sorted(TRACE_FILES.items()):
            path = traces_dir() / file
            print(f"{name:10s} {path} {'' if path.is_file() else '(absent)'}")
        return 0
    args.trace = args.trace or args.trace_option
    own_history = args.from_cloudwatch or args.from_bucket is not None
    if own_history and args.trace:
        parser.error("give a trace or --from-cloudwatch/--from-bucket, not both")
    if not args.trace and not own_history:
        parser.error("a trace is required (or --from-cloudwatch, --from-bucket, --list-traces)")
    if args.known_hours and not args.sweep:
        parser.error("--known-hours is a reference of --sweep: add --sweep")
    try:
        if own_history:
            trace, config, summary = load_own_history(args, argv)
            if not args.quiet:
                print(summary, file=sys.stderr, flush=True)
        else:
            config = window_options(config_from_args(args), args)
            trace = load_trace(
                args.trace, outages=outages_from_args(args), max_idle_minutes=args.max_idle_minutes
            )
            # A window that selects nothing fails here, not later. The warnings are loud even
            # with --quiet: these minutes are not what the file seemed to say.
            selected = trace.between(*config.window())
            if config.days is not None:
                selected = selected.head(config.days)
            for note in selected.absent_run_notes():
                print(f"saleor-backtest: warning: {note}", file=sys.stderr, flush=True)
        events = load_events(args.events) if args.events is not None else ()
    except (TraceError, ConfigurationError, ValueError, MetricsUnavailableError, OSError) as error:
        print(f"saleor-backtest: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"saleor-backtest: AWS refused or could not be reached: {error}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    if args.sweep:
        if events:
            print("saleor-backtest: --events is not replayed by --sweep: run them apart", file=sys.stderr)
            return 2
        return _sweep(args, trace, config, progress)
    report = run_backtest(trace, config, progress=progress, events=events)
    print(report.table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
        progress(f"wrote {args.json}")
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(report, args.plot)
        progress(f"wrote {args.plot}")
    return 0


def _sweep(
    args: argparse.Namespace, trace: Trace, config: BacktestConfig, progress: Callable[[str], None]
) -> int:
    """--sweep: every knob, the frontier plot and the equal-shortfall table (frontier.py)."""
    sweep = run_sweep(trace, config, progress=progress, known_hours=args.known_hours)
    print(render_sweep(sweep))
    document = sweep.to_json()
    if args.target_shortfall is not None:
        try:
            tuning = tune(
                sweep, args.target_shortfall, config.capacity_per_instance, config.policy.target_cpu_percent
            )
        except ValueError as error:
            print(f"saleor-backtest: {error}", file=sys.stderr)
            return 2
        print()
        print(tuning.render())
        document["tuning"] = tuning.to_json()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        progress(f"wrote {args.json}")
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_frontier(sweep, args.plot)
        progress(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _percent(raw: str) -> float:
    """'0.5%' or '0.5 %' as 0.005; a bare number is a share ('0.005')."""
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a share (0.005) or a percentage (0.5%)") from error
    if not 0.0 <= value <= MAX_SHORTFALL_GOAL_PERCENT / 100:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not between 0 and {MAX_SHORTFALL_GOAL_PERCENT:g} % (TargetShortfallPercent's range)"
        )
    return value
