"""Writes a small model the way the nightly job publishes it, with the forecast it gave
where it was trained. Run once per runtime migration on the *old* runtime's checkout and
libraries, then commit the output; test_model_upgrade.py loads it on the new one.

    python tests/unit/data/make_model_fixture.py OUT_DIR

model-py311/ was written on Python 3.11.7 with scikit-learn 1.7.2, numpy 2.2.6 and scipy
1.16.3 (the python3.11 layer), by the commit before the move to python3.13.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from saleor_scaling.features import build_features, log_level
from saleor_scaling.local.synthetic import synthetic_history
from saleor_scaling.model import ServingBounds, load_verified
from saleor_scaling.training import TrainingConfig, train_as_nightly_job, training_rows

CAPACITY = 1000.0
QUANTILE = 0.6


def main(out: Path) -> None:
    history = synthetic_history(1_700_438_400, 12, peak_per_minute=6000.0, seed=7)
    # Few shallow trees: a fixture of tens of KB that still goes through every code path.
    config = TrainingConfig(horizon_steps=4, n_estimators=6, max_depth=6)
    model = train_as_nightly_job(history, training_rows(history, 4, "UTC"), config, 2, CAPACITY)
    blob = model.ensemble.to_npz()
    metadata = model.metadata.with_artifact(blob, "models/model.npz")
    served = load_verified(blob, metadata, ServingBounds(CAPACITY))
    rows = build_features(history, 4, "UTC")[-24:]
    levels = log_level(history.demand_per_minute())[-24:]
    forecasts = served.forecast_rows(rows, levels, QUANTILE)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.npz").write_bytes(blob)
    (out / "manifest.json").write_text(metadata.to_json())
    (out / "forecasts.json").write_text(
        json.dumps(
            {
                "quantile": QUANTILE,
                "capacity_per_instance": CAPACITY,
                "rows": rows.tolist(),
                "log_levels": levels.tolist(),
                "demand_mean": [f.demand_mean for f in forecasts],
                "demand_upper": [f.demand_upper for f in forecasts],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
