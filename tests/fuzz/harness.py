"""The emulated shop the hostile-input properties run in, reset between examples.

One world per module (building it, with its metrics in moto's CloudWatch and a trained
model, takes seconds; an example must take well under one): the shop and model of
tests/integration (`make_world`), and between examples only what an example may have
changed is put back (the state object, the group's sizes and tags, the manifest, the
history objects, CloudWatch's datapoints). The handler is rebuilt for every example, as a
cold start: nothing an example read is cached into the next.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.lease import PROJECT_TAG_KEYS
from saleor_scaling.local.emulator import LocalLambdaContext, scheduled_event, set_function_clock
from saleor_scaling.model import ModelMetadata
from saleor_scaling.series import MetricHistory
from tests.conftest import mock_account
from tests.integration.conftest import NOW, PredictWorld, emitted_metrics, iso, make_world

STEP = 300
DAY = 86400
MANIFEST_KEY = "models/manifest.json"
OPERATOR_MIN_SIZE = 1
MAX_SIZE = 20
DESIRED_BEFORE = 2
FAULT_METRICS = ("FallbackUsed", "StateResets", "PredictErrors", "CorruptHistoryObjects")


@contextlib.contextmanager
def emulated_aws() -> Iterator[tuple[boto3.session.Session, pytest.MonkeyPatch]]:
    """The `aws` fixture of tests/conftest.py for a whole module (it is function-scoped)."""
    with pytest.MonkeyPatch.context() as patch, mock_account(patch) as session:
        yield session, patch


class Outcome:
    """What one invocation did, as the operator would see it afterwards (a plain class:
    hypothesis prints a dataclass field by field, and a falsifying example then runs to
    pages)."""

    def __init__(
        self,
        result: dict[str, Any] | None,
        error: BaseException | None,
        metrics: dict[str, float],
        desired: int,
        min_size: int,
        max_size: int,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.result, self.error, self.metrics = result, error, metrics
        self.desired, self.min_size, self.max_size = desired, min_size, max_size
        self.tags = tags or {}

    def __repr__(self) -> str:
        return f"Outcome({self.describe()})"

    @property
    def status(self) -> str:
        return "raised" if self.result is None else str(self.result["status"])

    def describe(self) -> str:
        reason = self.result.get("reason", "") if self.result else repr(self.error)
        faults = {name: self.metrics[name] for name in FAULT_METRICS if name in self.metrics}
        return (
            f"{self.status}: desired {self.desired}, MinSize {self.min_size}, fault metrics {faults}; "
            f"{str(reason)[:300]}"
        )


class CachedMetrics:
    """CloudWatch's answer for a window, read once: the properties that change only S3
    objects ask moto the same question every example, and moto's GetMetricData scans every
    datapoint for every period (seconds a call)."""

    def __init__(self, source: Any, memo: dict[tuple[int, int, int], MetricHistory]) -> None:
        self._source = source
        self._memo = memo

    def fetch(self, start: int, end: int, now: int) -> MetricHistory:
        key = (start, end, now)
        if key not in self._memo:
            self._memo[key] = self._source.fetch(start, end, now)
        return self._memo[key]


class HostileWorld:
    """The predict world of tests/integration/conftest.py, resettable per example."""

    def __init__(
        self,
        session: boto3.session.Session,
        patch: pytest.MonkeyPatch,
        history: MetricHistory,
        trained_model: tuple[bytes, ModelMetadata],
    ) -> None:
        self.world: PredictWorld = make_world(session, patch, history, trained_model, desired=DESIRED_BEFORE)
        self.session = session
        self.s3 = session.client("s3")
        self.bucket = self.world.shop.bucket
        self.group_name = self.world.shop.group_name
        self.honest_manifest = self.s3.get_object(Bucket=self.bucket, Key=MANIFEST_KEY)["Body"].read()
        self.archive = S3HistoryArchive(self.s3, self.bucket, f"history/{self.group_name}")
        self.honest_days = {
            day: self.s3.get_object(Bucket=self.bucket, Key=self.archive.key_for(day))["Body"].read()
            for day in self.archive.stored_days()
        }
        self.honest_versions = object_versions(self.s3, self.bucket)
        self.cache_metrics = True
        self._metrics_memo: dict[tuple[int, int, int], MetricHistory] = {}
        real_build_ports = self.world.handler.build_ports

        def build_ports(settings: Any, boto_session: Any) -> Any:
            ports = real_build_ports(settings, boto_session)
            if self.cache_metrics:
                ports.metrics = CachedMetrics(ports.metrics, self._metrics_memo)
            return ports

        patch.setattr(self.world.handler, "build_ports", build_ports)

    @property
    def handler(self) -> Any:
        return self.world.handler

    def state_key(self) -> str:
        return f"state/{self.group_name}/predict-state.json"

    def reset(self) -> None:
        """The world as an honest first run finds it: no state, the operator's sizes, no
        tags of ours, the honest manifest and history objects; the handler cold. Objects
        are put back by deleting every version an example wrote (the bucket is versioned),
        so that moto's memory does not grow with the examples and eat the function's."""
        remove_versions_since(self.s3, self.bucket, self.honest_versions)
        forget_terminated_instances()
        autoscaling = self.session.client("autoscaling")
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=self.group_name,
            MinSize=OPERATOR_MIN_SIZE,
            MaxSize=MAX_SIZE,
            DesiredCapacity=DESIRED_BEFORE,
        )
        ours = [tag for tag in self.world.describe().get("Tags", []) if tag["Key"] in PROJECT_TAG_KEYS]
        if ours:
            autoscaling.delete_tags(
                Tags=[
                    {"ResourceId": self.group_name, "ResourceType": "auto-scaling-group", "Key": tag["Key"]}
                    for tag in ours
                ]
            )
        self.handler.reset_dependencies()

    def archive_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"history/{self.group_name}/")
        return [entry["Key"] for entry in listed.get("Contents", [])]

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def put_model(self, blob: bytes, manifest_changes: Mapping[str, Any]) -> None:
        """A forged pair as the attacker writes it: the object, then a manifest naming its
        new version with the right digest and size, with `manifest_changes` on top."""
        import hashlib

        version = self.s3.put_object(Bucket=self.bucket, Key="models/model.npz", Body=blob).get(
            "VersionId", ""
        )
        manifest = json.loads(self.honest_manifest)
        manifest.update(
            model_key="models/model.npz",
            model_version_id="" if version == "null" else version,
            sha256=hashlib.sha256(blob).hexdigest(),
            size_bytes=len(blob),
        )
        manifest.update(manifest_changes)
        self.put(MANIFEST_KEY, json.dumps(manifest).encode())

    def invoke(self, when: int = NOW, received_after: float = 3.0) -> Outcome:
        event = scheduled_event(iso(when))
        set_function_clock(self.handler, lambda: when + received_after)
        printed = io.StringIO()
        result: dict[str, Any] | None = None
        error: BaseException | None = None
        with contextlib.redirect_stdout(printed), memory_limited():
            try:
                result = self.handler.lambda_handler(event, LocalLambdaContext("predict"))
            except Exception as raised:  # judged by the properties, not here
                error = raised
        described = self.world.describe()
        if os.environ.get("SALEOR_FUZZ_TRACE_MEMORY"):
            status = Path("/proc/self/status").read_text()
            size = next(line for line in status.splitlines() if line.startswith("VmSize"))
            print(f"{size} after {result and result['status']} {type(error).__name__}", file=sys.stderr)
        return Outcome(
            result=result,
            error=error,
            metrics=emitted_metrics(printed.getvalue()),
            desired=int(described["DesiredCapacity"]),
            min_size=int(described["MinSize"]),
            max_size=int(described["MaxSize"]),
            tags={tag["Key"]: tag["Value"] for tag in described.get("Tags", [])},
        )

    # --- CloudWatch -------------------------------------------------------------------

    def clear_cloudwatch(self) -> None:
        """moto keeps every datum ever put; an example publishes its own series."""
        from moto.cloudwatch.models import cloudwatch_backends
        from moto.core.models import DEFAULT_ACCOUNT_ID

        backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        backend.metric_data.clear()
        backend.paged_metric_data.clear()

    def put_datums(self, datums: list[tuple[str, str, str, int, float]]) -> None:
        """(namespace, metric name, owner 'lb' or 'asg', epoch seconds, value) as
        PutMetricData would receive them, a thousand a call."""
        shop = self.world.shop
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, name, owner, stamp, value in datums:
            dimension = (
                {"Name": "LoadBalancer", "Value": shop.load_balancer_full_name}
                if owner == "lb"
                else {"Name": "AutoScalingGroupName", "Value": shop.group_name}
            )
            by_namespace.setdefault(namespace, []).append(
                {
                    "MetricName": name,
                    "Dimensions": [dimension],
                    "Timestamp": datetime.fromtimestamp(stamp, UTC),
                    "Value": value,
                }
            )
        cloudwatch = self.session.client("cloudwatch")
        for namespace, data in by_namespace.items():
            for offset in range(0, len(data), 1000):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[offset : offset + 1000])  # type: ignore[arg-type]


def object_versions(s3: Any, bucket: str) -> set[tuple[str, str]]:
    """Every (key, version id) in the bucket, delete markers included."""
    found: set[tuple[str, str]] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.add((entry["Key"], entry["VersionId"]))
    return found


def remove_versions_since(s3: Any, bucket: str, kept: set[tuple[str, str]]) -> None:
    """Delete every version and delete marker not in `kept`: each key's latest version is
    its kept one again (or the key is gone)."""
    for key, version in object_versions(s3, bucket) - kept:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)


_memory_size_mb: int | None = None


def limit_memory(memory_mb: int | None = None) -> None:
    """Arm the limit for this process's handler runs (`memory_limited`): called once the
    emulated world stands, and reports the address space then. Each run then gets the
    address space at its start plus MemorySize: moto's backends, the fixtures' trained
    model and what hypothesis and pytest hold (none of which a Lambda holds) are the
    baseline, and every byte the run allocates beyond it is the handler's."""
    global _memory_size_mb
    _memory_size_mb = memory_mb if memory_mb is not None else memory_size_under_test()
    if _memory_size_mb is None:
        return
    from tests.fuzz.limited_run import BASELINE_PREFIX, address_space_bytes

    baseline = address_space_bytes()
    report_outside_capture(
        f"{BASELINE_PREFIX} address space with the emulated world built {baseline / 2**20:.0f} MiB; "
        f"each run under RLIMIT_AS of its starting address space + MemorySize {_memory_size_mb} MB"
    )


@contextlib.contextmanager
def memory_limited() -> Iterator[None]:
    """RLIMIT_AS at the address space now plus MemorySize while the handler runs; lifted
    after, so that generating the next example and reporting a failure are not limited."""
    if _memory_size_mb is None:
        yield
        return
    import resource

    from tests.fuzz.limited_run import address_space_bytes

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes() + _memory_size_mb * 2**20, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def report_outside_capture(line: str) -> None:
    """To the stderr limited_run.py had before pytest captured it: the outer test reads it."""
    from tests.fuzz.limited_run import REPORT_FD_VARIABLE

    descriptor = os.environ.get(REPORT_FD_VARIABLE)
    if descriptor:
        os.write(int(descriptor), f"{line}\n".encode())


def memory_size_under_test() -> int | None:
    """The MemorySize limited_run.py was asked to enforce (None: not under the limit)."""
    from tests.fuzz.limited_run import MEMORY_VARIABLE

    value = os.environ.get(MEMORY_VARIABLE)
    return int(value) if value else None


def gzip_json(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode(), mtime=0)


def assert_no_escape(outcome: Outcome, aws_faults: tuple[type[BaseException], ...]) -> None:
    """Property 1: nothing leaves the handler but the documented fault path, an AWS fault
    re-raised after PredictErrors (handler_support.handle_scheduled_run); a MemoryError is
    an escape like any other."""
    if outcome.error is None:
        return
    assert isinstance(outcome.error, aws_faults), (
        f"{type(outcome.error).__name__} escaped the handler: {outcome.error!s:.300} "
        f"(raised at {where_raised(outcome.error)})"
    )
    assert outcome.metrics.get("PredictErrors") == 1, outcome.describe()


def where_raised(error: BaseException) -> str:
    """The innermost frame of the project's code and the frame that raised, for the report."""
    frames = traceback.extract_tb(error.__traceback__)
    project = ("/saleor_scaling/", "/functions/")
    ours = [frame for frame in frames if any(part in frame.filename for part in project)]
    shown = [*ours[-1:], frames[-1]] if frames else []
    return " -> ".join(f"{Path(frame.filename).name}:{frame.lineno} {frame.line}" for frame in shown)


def assert_within_group(outcome: Outcome) -> None:
    """AWS refuses capacity outside [MinSize, MaxSize]; moto does not, so it is checked here."""
    assert outcome.max_size == MAX_SIZE
    assert OPERATOR_MIN_SIZE <= outcome.min_size <= outcome.desired <= MAX_SIZE, outcome.describe()


def assert_no_more_than(outcome: Outcome, reference: Outcome, what: str) -> None:
    """Property 3: no more capacity and no higher floor than `reference` set."""
    assert outcome.desired <= reference.desired, (
        f"{what}: {outcome.describe()} / reference {reference.describe()}"
    )
    assert outcome.min_size <= reference.min_size, (
        f"{what}: {outcome.describe()} / reference {reference.describe()}"
    )


def assert_fell_back_untouched(outcome: Outcome) -> None:
    """A refused input: the fallback, its metric, and the group as it was."""
    assert outcome.status == "fallback", outcome.describe()
    assert outcome.metrics.get("FallbackUsed") == 1, outcome.describe()
    assert (outcome.desired, outcome.min_size) == (DESIRED_BEFORE, OPERATOR_MIN_SIZE), outcome.describe()


def window_days(decision_time: int, horizon_steps: int) -> list[int]:
    """The UTC days predict reads from the S3 backup for the run of `decision_time`, whole
    days only (days the window only touches at an edge are left out)."""
    from saleor_scaling.features import HISTORY_STEPS_NEEDED, LEVEL_STEPS
    from saleor_scaling.predict_service import CLOUDWATCH_WINDOW_STEPS

    anchor = decision_time - 2 * STEP
    start = anchor - (HISTORY_STEPS_NEEDED + horizon_steps + LEVEL_STEPS) * STEP
    recent_start = anchor + STEP - CLOUDWATCH_WINDOW_STEPS * STEP
    first = start - start % DAY + DAY
    return [day for day in range(first, recent_start - DAY + 1, DAY)]


def floats_of(series: np.ndarray) -> list[float]:
    return [float(value) for value in series]


InvokeFn = Callable[[], Outcome]


def forget_terminated_instances() -> None:
    """moto keeps every terminated instance, and with it its subnet address (AWS frees
    it): after a few hundred examples' scale-outs and resets the subnet runs out and
    UpdateAutoScalingGroup raises StopIteration. Drop them and free their addresses."""
    from moto.ec2.models import ec2_backends

    backends = [backend for account in ec2_backends.values() for backend in account.values()]
    for backend in backends:
        for reservation_id, reservation in list(backend.reservations.items()):
            live = []
            for instance in reservation.instances:
                if instance.state != "terminated":
                    live.append(instance)
                    continue
                subnet_id = instance.subnet_id
                if subnet_id:
                    subnet = backend.get_subnet(subnet_id)
                    for address in list(getattr(instance, "_private_ips", ())):
                        subnet.del_subnet_ip(address)
            reservation.instances = live
            if not live:
                del backend.reservations[reservation_id]
