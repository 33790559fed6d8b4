"""Which 5-minute bucket a predict run may read: the rule `strategies.PredictiveController`
decides by when the backtest gives it none.

CloudWatch's own 1-minute data, gathered into 5-minute buckets on the epoch's 5-minute
boundaries, each readable one step after it closes (predict leaves the newest bucket out
as possibly incomplete: `settings.ANCHOR_OFFSET_STEPS`). The backtest's
`observed.Observation` generalises this rule to traces coarser than a minute; on
per-minute data the two agree at every minute (tests/backtest/test_observed.py), which is
what lets the nightly replay run here without the backtest's trace machinery.
"""

from __future__ import annotations

from typing import Protocol

from saleor_scaling import STEP_SECONDS
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS

MINUTES_PER_STEP = STEP_SECONDS // 60


class Visibility(Protocol):
    def anchor(self, history_start: int, decision_time: int) -> int:
        """The step index of the newest bucket readable at `decision_time` (may be negative)."""
        ...

    def unit_span(self, history_start: int, step: int) -> tuple[int, int]:
        """Minutes [first, end) from `history_start` the bucket `step` aggregates."""
        ...


class CloudWatchBuckets:
    """Per-minute data in 5-minute buckets, each read `ANCHOR_OFFSET_STEPS - 1` steps after
    it closes."""

    def anchor(self, history_start: int, decision_time: int) -> int:
        closed_before = decision_time - (ANCHOR_OFFSET_STEPS - 1) * STEP_SECONDS
        visible_end = closed_before // STEP_SECONDS * STEP_SECONDS
        return (visible_end - history_start) // STEP_SECONDS - 1

    def unit_span(self, history_start: int, step: int) -> tuple[int, int]:
        begin = (history_start + step * STEP_SECONDS) // STEP_SECONDS * STEP_SECONDS
        offset = (begin - history_start) // 60
        return max(0, offset), offset + MINUTES_PER_STEP


CLOUDWATCH_BUCKETS = CloudWatchBuckets()
