"""Run by test_built_artifact in a fresh interpreter: import the handlers the way Lambda
does from the `sam build` output (function directory, then the layers' python/ folders,
then the runtime's boto3), and run retrain then predict against emulated AWS.

The emulated shop comes from `saleor_scaling.local`, which the layer leaves out: once the
handlers are imported, the source tree's package is searched after the layer's, so only
what the layer lacks comes from src/. The report names where every module came from, and
the test fails if any but `saleor_scaling.local` came from outside the artifact (a lazy
import of a module the layer lacks would be found in src/ here, and fail in Lambda).

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

BUILD_DIR = Path(sys.argv[1]).resolve()
SOURCE_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "saleor_scaling"
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

        saleor_scaling.__path__.append(str(SOURCE_PACKAGE))
        from saleor_scaling.local.emulator import (
            LocalLambdaContext,
            create_shop,
            publish_history,
            scheduled_event,
            set_function_clock,
        )
        from saleor_scaling.local.synthetic import synthetic_history

        session = boto3.session.Session(region_name="us-east-1")
        shop = create_shop(session, desired=2, max_size=20)
        os.environ.update(shop.environment())
        start = 1_700_438_400
        days = 12
        history = synthetic_history(start, days, peak_per_minute=6000.0, seed=7)
        now = start + days * 86400 - 3600
        publish_history(session, shop, history.window(start, now - now % 300), now)

        trained = retrain.lambda_handler(scheduled_event(_iso(now)), LocalLambdaContext("retrain"))
        set_function_clock(predict, lambda: now + 3.0)
        decided = predict.lambda_handler(scheduled_event(_iso(now)), LocalLambdaContext("predict"))

    print(
        json.dumps(
            {
                "modules": {
                    module.__name__: str(Path(module.__file__ or "").resolve())
                    for module in (sklearn, numpy, saleor_scaling, aws_lambda_powertools)
                },
                "package_modules": {
                    name: str(Path(module.__file__ or "").resolve())
                    for name, module in sorted(sys.modules.items())
                    if name.startswith("saleor_scaling.")
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


if __name__ == "__main__":
    main()
