"""What the real handlers do per run, measured in emulated AWS: the input of the cost model.

    python -m saleor_scaling.local.metering [--trace nasa] [--replay-hours 3]

The shop of `make local` (a real trace under reactive scaling, its last 13 days in
CloudWatch, older days in the S3 backup) is built in moto; the real retrain handler runs
with `events/retrain.json`, then the real predict handler every 5 simulated minutes in
forecast-and-scale mode (`saleor_scaling.local.run.Replay`), then retrain once more (a
night with a champion to judge). For every invocation this
records what it did, from the outside:

- its duration: the CPU time of the handler call in this process, moto's work for the
  calls included (an upper bound of the run's own compute; on real AWS the calls cost
  latency instead, and the wall clock of a shared machine measures its other processes);
- every AWS API call the handler's own clients made (a botocore `before-parameter-build`
  hook registered for the replay only), and for `GetMetricData` the metric queries each call
  requested;
- the lines it printed (Powertools' JSON log lines and EMF metric lines, as Lambda would
  ship them to CloudWatch Logs) and so its log bytes and its distinct custom metrics.

Then the faults that have their own metric are provoked once each (a replayed event, a
malformed one, a stale one, a corrupt state object, a missing group, a missing bucket), so
that the metrics emitted "only when they happen" are seen being emitted; these runs are kept
apart from the steady-state runs the bill is computed from.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from saleor_scaling.costs import MetricKey, RunProfile, emf_metrics

REPO_ROOT = Path(__file__).resolve().parents[3]
DAY = 86400

# The platform lines Lambda adds to every invocation's log stream, in the format of the
# Lambda developer guide's Python logging example (docs.aws.amazon.com/lambda/latest/dg/
# python-logging.html), with figures of a typical width.
_REQUEST_ID = "8f507cfc-xmpl-4697-b07a-ac58fc914c95"
PLATFORM_LINES = (
    f"START RequestId: {_REQUEST_ID} Version: $LATEST",
    f"END RequestId: {_REQUEST_ID}",
    f"REPORT RequestId: {_REQUEST_ID}\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 187 MB\t\n"
    "XRAY TraceId: 1-5e34a614-10bdxmplf1fb44f07bc535a1\tSegmentId: 3d752xmpl1bbe37e\tSampled: true\t",
)


@dataclass
class Invocation:
    function: str
    phase: str
    """"steady" (the replay the bill is computed from) or "fault" (a provoked fault)."""
    event_time: int
    seconds: float
    """CPU seconds of the handler call in this process (moto's emulation of AWS included):
    what the run computes, unaffected by other processes on a shared machine."""
    wall_seconds: float
    output: str
    calls: Counter[str]
    metrics_requested: int

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]

    @property
    def metrics(self) -> set[MetricKey]:
        return emf_metrics(self.lines)

    @property
    def log_bytes(self) -> int:
        return sum(len(line.encode()) for line in (*self.lines, *PLATFORM_LINES))

    @property
    def log_events(self) -> int:
        return len(self.lines) + len(PLATFORM_LINES)


@dataclass
class Metering:
    invocations: list[Invocation] = field(default_factory=list)
    init_seconds: dict[str, float] = field(default_factory=dict)
    state_bytes: float = 0.0
    history_object_bytes: float = 0.0
    model_bytes: float = 0.0

    def runs(self, function: str, phase: str = "steady") -> list[Invocation]:
        return [i for i in self.invocations if i.function == function and i.phase == phase]

    def emitted(self, phase: str | None = None) -> set[MetricKey]:
        found: set[MetricKey] = set()
        for invocation in self.invocations:
            if phase is None or invocation.phase == phase:
                found |= invocation.metrics
        return found

    def profile(self, function: str) -> RunProfile:
        runs = self.runs(function)
        if not runs:
            raise ValueError(f"no steady-state {function} runs were measured")
        n = float(len(runs))
        s3: Counter[str] = Counter()
        for run in runs:
            s3.update({op.split(":", 1)[1]: count for op, count in run.calls.items() if op.startswith("s3:")})
        # The share of hours in which each metric was sent (hours of the replay's clock).
        hours: dict[int, set[MetricKey]] = {}
        for run in runs:
            hours.setdefault(run.event_time // 3600, set()).update(run.metrics)
        every = {key for emitted in hours.values() for key in emitted}
        share = {key: sum(key in emitted for emitted in hours.values()) / len(hours) for key in every}
        stored = 0.0
        if function == "retrain":
            # A year of the daily history backup and half a year of nightly models (the
            # lifecycle keeps noncurrent models 180 days): an upper bound, every night promoting.
            stored = 365 * self.history_object_bytes + 180 * self.model_bytes
        return RunProfile(
            function=function,
            runs=len(runs),
            seconds=sum(r.seconds for r in runs) / n,
            init_seconds=self.init_seconds.get(function, 0.0),
            log_bytes=sum(r.log_bytes for r in runs) / n,
            log_events=sum(r.log_events for r in runs) / n,
            metrics_requested=sum(r.metrics_requested for r in runs) / n,
            s3_requests={op: count / n for op, count in s3.items()},
            sns_publishes=sum(r.calls.get("sns:Publish", 0) for r in runs) / n,
            metric_hours_share=share,
            state_bytes=self.state_bytes if function == "predict" else 0.0,
            stored_bytes=stored,
        )


class _CallRecorder:
    """Counts the AWS calls made while `active` is set (the handler's, not the replay's)."""

    def __init__(self) -> None:
        self.active: Counter[str] | None = None
        self.metrics_requested = 0

    def __call__(self, params: dict[str, Any], event_name: str = "", **_: Any) -> None:
        if self.active is None:
            return
        service_name, operation = event_name.split(".", 2)[1:]
        self.active[f"{service_name}:{operation}"] += 1
        if operation == "GetMetricData":
            self.metrics_requested += sum(
                1 for query in params.get("MetricDataQueries", []) if "MetricStat" in query
            )


@contextlib.contextmanager
def _recording_aws_calls() -> Iterator[_CallRecorder]:
    """A botocore handler every session created meanwhile gets (the handlers create their
    own sessions), removed again afterwards."""
    import botocore.handlers

    recorder = _CallRecorder()
    entry = ("before-parameter-build", recorder)
    botocore.handlers.BUILTIN_HANDLERS.append(entry)
    try:
        yield recorder
    finally:
        botocore.handlers.BUILTIN_HANDLERS.remove(entry)


class _MeteredHandler:
    """A handler module as the replay sees it: each call timed, its calls and output kept."""

    def __init__(
        self, module: ModuleType, function: str, metering: Metering, recorder: _CallRecorder
    ) -> None:
        self.module, self.function = module, function
        self.metering, self.recorder = metering, recorder
        self.phase = "steady"

    def lambda_handler(self, event: Any, context: Any) -> Any:
        sink = io.StringIO()
        self.recorder.active, self.recorder.metrics_requested = Counter(), 0
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            with contextlib.redirect_stdout(sink):
                return self.module.lambda_handler(event, context)
        finally:
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            calls, self.recorder.active = self.recorder.active, None
            output = sink.getvalue()
            self.metering.invocations.append(
                Invocation(
                    function=self.function,
                    phase=self.phase,
                    event_time=_event_time(event),
                    seconds=cpu,
                    wall_seconds=elapsed,
                    output=output,
                    calls=calls,
                    metrics_requested=self.recorder.metrics_requested,
                )
            )


def _event_time(event: Any) -> int:
    raw = event.get("time") if isinstance(event, dict) else None
    try:
        return int(datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0  # a malformed event: its run is kept, without a time


def import_seconds(function: str) -> float:
    """CPU seconds of the handler module's import in a fresh interpreter (from the source
    tree, not the layer's precompiled bytecode): what a cold start adds."""
    probe = (
        "import time; started = time.process_time()\n"
        "from saleor_scaling.local.emulator import load_function\n"
        f"load_function({function!r}); print(time.process_time() - started)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=dict(os.environ)
    )
    return float(done.stdout.strip().splitlines()[-1])


def meter(
    trace_name: str = "nasa",
    *,
    history_days: int = 14,
    replay_hours: float = 3.0,
    faults: bool = True,
    retrain: bool = True,
    measure_imports: bool = False,
    prepare: Callable[[str, ModuleType], None] | None = None,
) -> Metering:
    """Run retrain once and predict for `replay_hours` against the emulated shop (as
    `make local` does) and measure every invocation. `prepare(function, module)` is called
    on each freshly loaded handler module before it runs (tests change what it emits).
    Without `retrain` no model is trained, and predict runs in its fallback."""
    from saleor_scaling.adapters.history_archive import S3HistoryArchive
    from saleor_scaling.backtest.history import metric_history
    from saleor_scaling.backtest.traces import MINUTES_PER_STEP, load_trace
    from saleor_scaling.local.emulator import LocalLambdaContext, create_shop, load_function, publish_history
    from saleor_scaling.local.run import CLOUDWATCH_DAYS, Replay, _emulated_aws, _follow_stdout, _iso
    from saleor_scaling.simulation.simulator import (
        GroupSettings,
        TargetTracking,
        TargetTrackingSettings,
        simulate,
    )

    metering = Metering()
    if measure_imports:
        metering.init_seconds = {name: import_seconds(name) for name in ("predict", "retrain")}
    retrain_event = json.loads((REPO_ROOT / "events" / "retrain.json").read_text())
    retrain_at = _event_time(retrain_event)
    history_minutes = history_days * 1440 + (retrain_at % DAY) // 60
    replay_minutes = int(replay_hours * 60) // MINUTES_PER_STEP * MINUTES_PER_STEP
    scaled = load_trace(trace_name).scaled(8.0, 1000.0)
    demand = scaled.demand[: history_minutes + replay_minutes]
    start = retrain_at - history_minutes * 60
    settings = GroupSettings(max_size=10, boot_delay_minutes=5, capacity_per_instance=1000.0)
    tracking = TargetTracking(TargetTrackingSettings(target_requests_per_instance=1000.0))
    past = simulate(demand[:history_minutes], settings, reactive=tracking)
    past_history = metric_history(start, past, settings)

    saved_environment = dict(os.environ)
    try:
        with _emulated_aws() as session, _recording_aws_calls() as recorder, open(os.devnull, "w") as quiet:
            shop = create_shop(session, max_size=10, desired=int(past.desired[-1]))
            os.environ.update(shop.environment(SCALING_MODE="forecast-and-scale", EVENT_CLOCK_CHECK="off"))
            cutoff = retrain_at - CLOUDWATCH_DAYS * DAY
            cutoff -= cutoff % DAY
            publish_history(session, shop, past_history.window(cutoff, retrain_at), retrain_at)
            S3HistoryArchive(session.client("s3"), shop.bucket, f"history/{shop.group_name}").write(
                past_history.window(start, cutoff)
            )
            modules: dict[str, ModuleType] = {}
            with contextlib.redirect_stdout(quiet):
                for name in ("retrain", "predict"):
                    modules[name] = load_function(name)
                    if prepare is not None:
                        prepare(name, modules[name])
            _follow_stdout("retrain", "predict")
            retrainer = _MeteredHandler(modules["retrain"], "retrain", metering, recorder)
            predict = _MeteredHandler(modules["predict"], "predict", metering, recorder)
            if retrain:
                # The night before: the second run below then judges this champion on a day
                # it never trained on (a run the same night would skip the comparison).
                night_before = {**retrain_event, "time": _iso_time(retrain_at - DAY)}
                retrainer.lambda_handler(night_before, LocalLambdaContext("retrain", memory_limit_in_mb=1024))

            replay = Replay(
                session, shop, predict, retrain_at, demand[history_minutes:].tolist(), settings, quiet
            )
            with contextlib.redirect_stdout(quiet):
                simulate(
                    demand[history_minutes:],
                    settings,
                    reactive=TargetTracking(TargetTrackingSettings(target_requests_per_instance=1000.0)),
                    predictive=replay,
                    initial=int(past.desired[-1]),
                    on_minute=replay.on_minute,
                )
            if retrain:
                # The next night's run judges the champion too (ChampionMae): the second of
                # the measured nights.
                retrainer.lambda_handler(
                    retrain_event, LocalLambdaContext("retrain", memory_limit_in_mb=1024)
                )
            s3 = session.client("s3")
            state_key = f"state/{shop.group_name}/predict-state.json"
            metering.state_bytes = float(s3.head_object(Bucket=shop.bucket, Key=state_key)["ContentLength"])
            sizes = [
                (item["Key"], float(item["Size"]))
                for item in s3.list_objects_v2(Bucket=shop.bucket).get("Contents", [])
            ]
            history = [size for key, size in sizes if key.startswith("history/")]
            metering.history_object_bytes = sum(history) / max(len(history), 1)
            metering.model_bytes = sum(size for key, size in sizes if key.startswith("models/"))
            if faults:
                last = retrain_at + replay_minutes * 60
                _provoke_faults(session, shop, predict, retrainer, retrain_event, last, _iso, state_key)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
    return metering


def _provoke_faults(
    session: Any,
    shop: Any,
    predict: _MeteredHandler,
    retrain: _MeteredHandler,
    retrain_event: dict[str, Any],
    last: int,
    iso: Callable[[int], str],
    state_key: str,
) -> None:
    """Each fault with a metric of its own, once; a fault that raises is what Lambda sees."""
    from saleor_scaling.local.emulator import LocalLambdaContext, scheduled_event

    predict.phase = retrain.phase = "fault"
    context = LocalLambdaContext("predict")
    autoscaling = session.client("autoscaling")

    def invoke(handler: _MeteredHandler, event: Any, ctx: Any = context) -> None:
        with contextlib.suppress(Exception):
            handler.lambda_handler(event, ctx)

    def reset(**environment: str) -> None:
        os.environ.update(environment)
        predict.module.reset_dependencies()

    invoke(predict, scheduled_event(iso(last - 300)))  # the last slot again: a duplicate
    invoke(predict, {"detail-type": "Scheduled Event", "time": "yesterday"})  # malformed
    # The operator lowers the group to 1: predict scales it back out (a scaling action).
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=shop.group_name, MinSize=1, DesiredCapacity=1)
    invoke(predict, scheduled_event(iso(last)))
    session.client("s3").put_object(Bucket=shop.bucket, Key=state_key, Body=b"{not json")
    invoke(predict, scheduled_event(iso(last + 300)))  # a corrupt state object is reset
    reset(EVENT_CLOCK_CHECK="on")
    invoke(predict, scheduled_event(iso(last + 600)))  # stale against the function's clock
    reset(EVENT_CLOCK_CHECK="off", MODEL_BUCKET="no-such-bucket")
    invoke(predict, scheduled_event(iso(last + 900)))  # an AWS fault (NoSuchBucket)
    invoke(retrain, retrain_event, LocalLambdaContext("retrain", memory_limit_in_mb=1024))
    reset(MODEL_BUCKET=shop.bucket)
    # A shop too young for a model: no manifest, and retrain's warm-up notice (WarmingUp).
    from saleor_scaling.warmup import WarmUp

    s3 = session.client("s3")
    manifest = s3.get_object(Bucket=shop.bucket, Key="models/manifest.json")["Body"].read()
    s3.delete_object(Bucket=shop.bucket, Key="models/manifest.json")
    young = WarmUp(last, last + 3600, 1.0, 2.0, last + 86400, "the history spans 1.0 days")
    s3.put_object(Bucket=shop.bucket, Key="models/warm-up.json", Body=young.to_json())
    invoke(predict, scheduled_event(iso(last + 1200)))
    s3.put_object(Bucket=shop.bucket, Key="models/manifest.json", Body=manifest)
    s3.delete_object(Bucket=shop.bucket, Key="models/warm-up.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", default="nasa")
    parser.add_argument("--replay-hours", type=float, default=3.0)
    args = parser.parse_args(argv)
    metering = meter(args.trace, replay_hours=args.replay_hours, measure_imports=True)
    for function in ("predict", "retrain"):
        profile = metering.profile(function)
        print(
            f"{function}: {profile.runs} runs, {profile.seconds:.2f} s, import {profile.init_seconds:.2f} s, "
            f"{profile.log_bytes:.0f} log bytes, {profile.metrics_requested:.0f} metrics requested, "
            f"S3 {dict(profile.s3_requests)}"
        )
    steady, faults = metering.emitted("steady"), metering.emitted("fault")
    print(f"custom metrics emitted in the replay ({len(steady)}):")
    print("\n".join(f"  {key.label()}" for key in sorted(steady)))
    print(f"only when a fault happens ({len(faults - steady)}):")
    print("\n".join(f"  {key.label()}" for key in sorted(faults - steady)))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _iso_time(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")
