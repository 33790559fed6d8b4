"""In-memory stand-ins for the AWS adapters, for benchmarks and unit tests that time or
probe our code alone. They refuse what AWS refuses, like the real adapters do."""

from __future__ import annotations

from typing import Any

import numpy as np

from saleor_scaling.adapters.cloudwatch import ONE_MINUTE_RETENTION_SECONDS, check_request_window
from saleor_scaling.model import ModelMetadata, ModelNotFoundError
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.warmup import WarmUp


class MemoryMetrics:
    """CloudWatch holding a known history; records each request window."""

    def __init__(self, history: MetricHistory) -> None:
        self.history = history
        self.requests: list[tuple[int, int]] = []

    def fetch(self, start: int, end: int, now: int) -> MetricHistory:
        check_request_window(start, end, now, queries=len(Metric))
        self.requests.append((start, end))
        window = self.history.window(start, end)
        if now - start > ONE_MINUTE_RETENTION_SECONDS:
            window.values[Metric.BUSIEST_MINUTE][:] = np.nan  # as CloudWatch: no 1-minute data
        return window


class MemoryArchive:
    """The S3 history backup as one merged history."""

    def __init__(self) -> None:
        self.stored = MetricHistory.empty(0, 0)
        self.corrupt_days: list[str] = []

    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory:
        return self.stored.window(start, end)

    def write(self, history: MetricHistory) -> list[str]:
        self.stored = self.stored.combine(history)
        return [f"day-{day}" for day in range(history.start // 86400, (history.end - 1) // 86400 + 1)]


class MemoryRegistry:
    """The model registry: every published version kept, the last one current."""

    def __init__(self) -> None:
        self.versions: list[tuple[bytes, ModelMetadata]] = []
        self.notice: WarmUp | None = None

    def current(self) -> ModelMetadata:
        if not self.versions:
            raise ModelNotFoundError("no model published")
        return self.versions[-1][1]

    def model_bytes(self, metadata: ModelMetadata) -> bytes:
        return next(
            blob for blob, meta in self.versions if meta.model_version_id == metadata.model_version_id
        )

    def publish(self, blob: bytes, metadata: ModelMetadata) -> ModelMetadata:
        published = metadata.with_artifact(blob, "models/model.npz", f"v{len(self.versions) + 1}")
        self.versions.append((blob, published))
        return published

    def warm_up(self) -> WarmUp | None:
        return self.notice

    def write_warm_up(self, notice: WarmUp) -> None:
        self.notice = notice

    def clear_warm_up(self) -> None:
        self.notice = None


class MemoryNotifier:
    def __init__(self) -> None:
        self.notices: list[tuple[str, dict[str, Any]]] = []

    def notify(self, subject: str, body: dict[str, Any]) -> None:
        self.notices.append((subject, body))
