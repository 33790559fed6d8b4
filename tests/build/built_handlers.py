"""Run by test_built_artifact in a fresh interpreter: import the handlers the way Lambda
does from the `sam build` output (function directory, then the layers' python/ folders,
then the runtime's boto3), and run retrain then predict against emulated AWS.

Usage: python built_handlers.py BUILD_DIR  -> prints one JSON document.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

BUILD_DIR = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(BUILD_DIR / "SklearnLayer" / "python"), str(BUILD_DIR / "DomainLayer" / "python")]
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    N_ESTIMATORS="20",
)


def load(function: str) -> ModuleType:
    path = BUILD_DIR / function / "app.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"built_{function}", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        retrain = load("RetrainFunction")
        predict = load("PredictFunction")
        import aws_lambda_powertools
        import numpy
        import sklearn

        import saleor_scaling
        from saleor_scaling.local.emulator import (
            LocalLambdaContext,
            create_shop,
            publish_history,
            scheduled_event,
        )

        session = boto3.session.Session(region_name="us-east-1")
        shop = create_shop(session, desired=2, max_size=20)
        os.environ.update(shop.environment())
        start = 1_700_438_400
        days = 12
        history = _history(start, days)
        now = start + days * 86400 - 3600
        publish_history(session, shop, history.window(start, now - now % 300), now)

        trained = retrain.lambda_handler(scheduled_event(_iso(now)), LocalLambdaContext("retrain"))
        decided = predict.lambda_handler(scheduled_event(_iso(now)), LocalLambdaContext("predict"))

    print(
        json.dumps(
            {
                "modules": {
                    module.__name__: str(Path(module.__file__ or "").resolve())
                    for module in (sklearn, numpy, saleor_scaling, aws_lambda_powertools)
                },
                "retrain": {"status": trained["status"], "reason": trained["reason"]},
                "predict": {
                    "status": decided["status"],
                    "reason": decided["reason"],
                    "model": decided.get("model"),
                },
            }
        )
    )


def _iso(epoch_seconds: int) -> str:
    return f"{datetime.fromtimestamp(epoch_seconds, UTC):%Y-%m-%dT%H:%M:%SZ}"


def _history(start: int, days: int) -> Any:
    """A daily cycle with noise, built with the artifact's own numpy and domain code."""
    import numpy as np

    from saleor_scaling.series import Metric, MetricHistory

    steps = days * 288
    stamps = start + 300 * np.arange(steps)
    hour = (stamps % 86400) / 3600.0
    noise = np.random.default_rng(7).lognormal(0.0, 0.08, steps)
    demand = 6000.0 * (0.55 + 0.45 * np.sin((hour - 14.0) / 24.0 * 2 * np.pi)) * noise
    in_service = np.maximum(1, np.ceil(demand / 1000.0))
    cpu = demand / in_service / 1000.0 * 70.0
    return MetricHistory(
        start=start,
        values={
            Metric.REQUESTS: demand * 5,
            Metric.RESPONSE_TIME: 0.08 + 0.1 * cpu / 100,
            Metric.ERRORS_5XX: np.zeros(steps),
            Metric.CPU: cpu,
            Metric.DESIRED: in_service,
            Metric.IN_SERVICE: in_service,
        },
    )


if __name__ == "__main__":
    main()
