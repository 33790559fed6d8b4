"""A model the python3.11 deployment published keeps serving after the move to
python3.13: the manifest is format 2 either way, and the arrays are read by our own
traversal with `allow_pickle=False`, so neither the Python nor the scikit-learn/numpy
versions that trained it matter (they are recorded in `library_versions`, not checked).

The fixture was trained on Python 3.11 with the old layer's libraries
(data/make_model_fixture.py says how); here it is loaded and must forecast exactly what it
forecast there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from saleor_scaling.model import FORMAT_VERSION, ModelMetadata, ServingBounds, load_verified

FIXTURE = Path(__file__).with_name("data") / "model-py311"


def test_a_model_trained_on_python311_serves_on_this_python_unchanged() -> None:
    blob = (FIXTURE / "model.npz").read_bytes()
    metadata = ModelMetadata.from_json((FIXTURE / "manifest.json").read_text())
    expected = json.loads((FIXTURE / "forecasts.json").read_text())
    assert metadata.format_version == FORMAT_VERSION == 2
    assert metadata.library_versions["python"].startswith("3.11.")
    assert metadata.library_versions["scikit-learn"] == "1.7.2"
    assert sys.version_info[:2] != (3, 11)  # the point: another Python than the one that trained it

    served = load_verified(blob, metadata, ServingBounds(expected["capacity_per_instance"]))
    forecasts = served.forecast_rows(
        np.array(expected["rows"]), np.array(expected["log_levels"]), expected["quantile"]
    )

    # Same arrays, same float64 arithmetic: equal to rounding, not merely close.
    np.testing.assert_allclose([f.demand_mean for f in forecasts], expected["demand_mean"], rtol=1e-12)
    np.testing.assert_allclose([f.demand_upper for f in forecasts], expected["demand_upper"], rtol=1e-12)
