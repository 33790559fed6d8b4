"""The one way both Lambda handlers treat their event and their faults, so that a bad
event and a fault look the same on every dashboard: a metric, one log line that says what
was left undone, and the exception re-raised for Lambda's error count and retry.

Every exception after the event is parsed gets that treatment, not only AWS faults: a
ValueError from a bad setting or an OverflowError from odd data must page the operator
as surely as throttling does, and never leave without a metric or a log line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit


def raw_event(event: Any) -> Mapping[str, Any]:
    """The event as Lambda delivered it (Powertools' data class wraps anything it is
    given); a ValueError for anything that is not a JSON object."""
    data = getattr(event, "raw_event", event)
    if not isinstance(data, Mapping):
        raise ValueError(
            f"event is a {type(data).__name__}, not an object: expected an EventBridge scheduled event"
        )
    return data


def handle_scheduled_run[Parsed, Result](
    event: Any,
    parse: Callable[[Mapping[str, Any]], Parsed],
    run: Callable[[Parsed], Result],
    *,
    logger: Logger,
    metrics: Metrics,
    faults: tuple[type[BaseException], ...],
    fault_metrics: tuple[str, ...],
    left_undone: str,
) -> Result:
    _group_dimension_from_environment(metrics)
    try:
        parsed = parse(raw_event(event))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        logger.error(f"rejected malformed event; {left_undone}", extra={"error": str(error)})
        raise ValueError(f"malformed event: {error}") from error
    try:
        return run(parsed)
    except Exception as error:
        for name in fault_metrics:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        kind = "AWS fault" if isinstance(error, faults) else f"internal error ({type(error).__name__})"
        logger.exception(f"{kind}; {left_undone}", extra={"error": str(error)})
        raise


def _group_dimension_from_environment(metrics: Metrics) -> None:
    """Every metric carries the group's dimension, as the dashboard and alarms name it, even
    one emitted before the settings are read (a malformed event reaching a fresh container, a
    bad setting): the handlers set it from the validated settings too, to the same value."""
    group = os.environ.get("AUTO_SCALING_GROUP_NAME", "")
    if group and metrics.default_dimensions.get("AutoScalingGroupName") != group:
        metrics.clear_default_dimensions()
        metrics.set_default_dimensions(AutoScalingGroupName=group)
