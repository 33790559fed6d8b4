"""The sample events in events/ are what `sam local invoke` sends: each must mean what the
README says when the real handlers receive it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from saleor_scaling.events import parse_event_time
from saleor_scaling.local.emulator import LocalLambdaContext, set_function_clock
from saleor_scaling.settings import ScalingMode
from tests.conftest import REPO_ROOT

EVENTS = REPO_ROOT / "events"


def event(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((EVENTS / name).read_text())
    return loaded


@pytest.mark.parametrize("name", ["scheduled.json", "forecast-only.json", "retrain.json"])
def test_sample_is_an_eventbridge_scheduled_event(name):
    sample = EventBridgeEvent(event(name))
    assert sample.detail_type == "Scheduled Event"
    assert sample.source == "aws.events"
    assert parse_event_time(sample.time) % 300 == 0


def test_env_file_names_both_functions_of_the_template():
    env = json.loads((EVENTS / "env.json").read_text())
    template = (REPO_ROOT / "template.yaml").read_text()
    for function, variables in env.items():
        assert f"  {function}:\n    Type: AWS::Serverless::Function" in template
        assert {"AUTO_SCALING_GROUP_NAME", "LOAD_BALANCER_FULL_NAME", "MODEL_BUCKET"} <= set(variables)


def test_every_event_file_is_covered():
    assert {path.name for path in Path(EVENTS).glob("*.json")} == {
        "scheduled.json",
        "dry-run.json",
        "forecast-only.json",
        "malformed.json",
        "retrain.json",
        "env.json",
    }


def test_scheduled_sample_without_metrics_is_a_safe_no_op(world):
    sample = event("scheduled.json")
    sent = datetime.fromisoformat(str(sample["time"]).replace("Z", "+00:00")).timestamp()
    set_function_clock(world.handler, lambda: sent + 3.0)  # delivered on time
    result = world.handler.lambda_handler(sample, LocalLambdaContext("predict"))
    assert result["status"] == "fallback"
    assert world.desired() == 2


def test_forecast_only_sample_overrides_the_mode(world):
    _, mode, dry_run = world.handler.parse_event(EventBridgeEvent(event("forecast-only.json")))
    assert mode is ScalingMode.FORECAST_ONLY
    assert dry_run is False


def test_dry_run_sample_is_a_rehearsal(world):
    sample = event("dry-run.json")
    assert world.handler.parse_event(EventBridgeEvent(sample))[2] is True
    sent = datetime.fromisoformat(str(sample["time"]).replace("Z", "+00:00")).timestamp()
    set_function_clock(world.handler, lambda: sent + 3.0)
    for _ in range(2):  # repeatable: it claims no slot
        result = world.handler.lambda_handler(sample, LocalLambdaContext("predict"))
        assert result["status"] == "dry-run"
        assert result["dry_run"]["would_be"] == "fallback"  # no metrics at the sample's time
    assert world.desired() == 2


def test_malformed_sample_is_rejected_by_both_handlers(world):
    from tests.conftest import load_handler

    for handler in (world.handler, load_handler("retrain")):
        with pytest.raises(ValueError, match="no 'time'"):
            handler.lambda_handler(event("malformed.json"), LocalLambdaContext("x"))
    assert world.desired() == 2
