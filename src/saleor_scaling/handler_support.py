"""The one way both Lambda handlers treat their event and their faults, so that a bad
event and an AWS fault look the same on every dashboard: a metric, one log line that says
what was left undone, and the exception re-raised for Lambda's error count and retry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

Parsed = TypeVar("Parsed")
Result = TypeVar("Result")


def handle_scheduled_run(
    event: Mapping[str, Any],
    parse: Callable[[Mapping[str, Any]], Parsed],
    run: Callable[[Parsed], Result],
    *,
    logger: Logger,
    metrics: Metrics,
    faults: tuple[type[BaseException], ...],
    fault_metrics: tuple[str, ...],
    left_undone: str,
) -> Result:
    try:
        parsed = parse(event)
    except ValueError as error:
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        logger.error(f"rejected malformed event; {left_undone}", extra={"error": str(error)})
        raise
    try:
        return run(parsed)
    except faults as error:
        for name in fault_metrics:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        logger.exception(f"AWS fault; {left_undone}", extra={"error": str(error)})
        raise
