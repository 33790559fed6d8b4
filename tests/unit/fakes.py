"""In-memory ports for run_predict: a group that refuses what Auto Scaling refuses, a state
store with conditional writes, and a registry holding one model; the test shop's settings."""

from __future__ import annotations

from typing import Any

from saleor_scaling.adapters.state_store import StoredState
from saleor_scaling.lease import Lease
from saleor_scaling.model import ModelMetadata
from saleor_scaling.policy import GroupCapacity, GroupFacts
from saleor_scaling.predict_service import PredictPorts, ScalableGroup, WarmPoolPort
from saleor_scaling.series import MetricHistory
from saleor_scaling.settings import ModelLocation, PolicySettings, PredictSettings
from saleor_scaling.state import StateConflictError


class HistoryPort:
    def __init__(self, history: MetricHistory) -> None:
        self.history = history
        self.corrupt_days: list[str] = []

    def fetch(self, start: int, end: int, now: int) -> MetricHistory:
        return self.history.window(start, end)

    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory:
        return self.history.window(start, end)


class FakeGroup:
    name = "saleor-api"

    def __init__(
        self, desired: int, min_size: int = 1, max_size: int = 20, lease_tag: str | None = None
    ) -> None:
        self.desired, self.min_size, self.max_size = desired, min_size, max_size
        self.lease_tag: str | None = lease_tag
        self.calls: list[tuple[str, int, int | None]] = []

    def describe(self) -> GroupFacts:
        return GroupFacts(self.min_size, self.max_size, self.desired, self.desired, self.lease_tag)

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        if not bounds.floor_managed:
            floor = self.min_size
        # Auto Scaling refuses these; moto would not.
        assert 0 <= floor <= desired <= self.max_size, (floor, desired, self.max_size)
        self.desired, self.min_size = desired, floor
        self.calls.append(("set_capacity", desired, floor))

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None:
        assert 0 <= floor <= self.max_size
        self.min_size = floor
        self.desired = max(self.desired, floor)
        self.calls.append(("set_floor", floor, None))

    def write_lease(self, lease: Lease) -> None:
        self.lease_tag = lease.encode()


class FakeModels:
    def __init__(self, blob: bytes, metadata: ModelMetadata) -> None:
        self.blob, self.metadata = blob, metadata

    def current(self) -> ModelMetadata:
        return self.metadata

    def model_bytes(self, metadata: ModelMetadata) -> bytes:
        return self.blob

    def warm_up(self) -> None:
        return None


class FakeState:
    def __init__(self) -> None:
        self.document: Any = None
        self.version = 0

    def load(self) -> StoredState:
        if self.document is None:
            return StoredState({}, None)
        return StoredState(self.document, str(self.version))

    def save(self, document: dict[str, Any], version: str | None) -> None:
        current = None if self.document is None else str(self.version)
        if version != current:
            raise StateConflictError(f"state is version {current}, not {version}")
        self.document, self.version = document, self.version + 1


class FakeNotifier:
    def __init__(self) -> None:
        self.notices: list[tuple[str, dict[str, Any]]] = []

    def notify(self, subject: str, body: dict[str, Any]) -> None:
        self.notices.append((subject, body))


def memory_ports(
    history: MetricHistory,
    group: ScalableGroup,
    blob: bytes,
    metadata: ModelMetadata,
    warm_pool: WarmPoolPort | None = None,
) -> PredictPorts:
    """run_predict's ports over one history (CloudWatch and the backup alike), one published
    model, an empty state and a notifier that keeps what it is sent."""
    return PredictPorts(
        metrics=HistoryPort(history),
        archive=HistoryPort(history),
        group=group,
        models=FakeModels(blob, metadata),
        state=FakeState(),
        notifier=FakeNotifier(),
        warm_pool=warm_pool,
    )


def shop_settings(policy: PolicySettings, **fields: Any) -> PredictSettings:
    """Predict's settings for the test shop's group, load balancer and model bucket."""
    return PredictSettings(
        auto_scaling_group_name="saleor-api",
        load_balancer_full_name="app/saleor/0123456789abcdef",
        model=ModelLocation(bucket="models"),
        policy=policy,
        **fields,
    )
