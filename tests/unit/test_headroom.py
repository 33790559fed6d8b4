"""Headroom: the table measured on held-out days sizes the forecast so that it covers the
busiest minute in the configured share of steps, and a bad table never serves."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.headroom import (
    MIN_ROWS_PER_BAND,
    QUANTILE_GRID,
    Basis,
    HeadroomError,
    HeadroomTable,
    fit_headroom,
)
from saleor_scaling.model import (
    PER_TREE_QUANTILE,
    ModelIntegrityError,
    ModelMetadata,
    ServingBounds,
    load_verified,
)
from saleor_scaling.series import FloatArray
from saleor_scaling.training import (
    TrainingConfig,
    build_model,
    split_holdout,
    train_challenger,
    training_rows,
)
from tests.conftest import synthetic_history

MONDAY = 1_700_438_400
CAPACITY = 1000.0
BOUNDS = ServingBounds(CAPACITY)


def covered_share(table: HeadroomTable, forecast, busiest, quantile: float) -> float:
    return float(np.mean(forecast * table.multipliers(forecast, quantile) >= busiest))


def noisy_steps(rows: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Forecasts from 300 to 6,000 requests/min; busiest minutes 0-60 % above, noisier when small."""
    rng = np.random.default_rng(seed)
    forecast = rng.uniform(300.0, 6000.0, rows)
    noise = rng.lognormal(0.0, 0.05 + 30.0 / np.sqrt(forecast), rows)
    return forecast, forecast * noise * rng.uniform(1.0, 1.3, rows)


def test_sized_forecast_covers_the_busiest_minute_in_the_quantile_share_of_steps() -> None:
    forecast, busiest = noisy_steps(2000, seed=1)
    table = fit_headroom(forecast, busiest, busiest / 1.15)
    assert table is not None
    assert table.basis == Basis.BUSIEST_MINUTE
    assert len(table.band_edges) == 3  # four bands of forecast size
    for quantile in (0.6, 0.8, 0.95):
        # On the steps it was measured on, by construction ...
        assert covered_share(table, forecast, busiest, quantile) >= quantile - 0.01
        # ... and on fresh steps of the same kind, within sampling error.
        fresh_forecast, fresh_busiest = noisy_steps(2000, seed=2)
        assert covered_share(table, fresh_forecast, fresh_busiest, quantile) == pytest.approx(
            quantile, abs=0.04
        )
    # Never below the forecast, and more headroom for a higher quantile.
    assert np.all(table.multipliers(forecast, 0.5) >= 1.0)
    assert np.all(table.multipliers(forecast, 0.95) >= table.multipliers(forecast, 0.6))


def test_small_forecasts_get_their_own_band() -> None:
    # Small steps are far noisier (relative) than large ones: one factor for both would
    # starve the small or overpay for the large.
    rng = np.random.default_rng(0)
    small = rng.uniform(400, 600, 400)
    large = rng.uniform(7000, 8000, 400)
    forecast = np.concatenate([small, large])
    busiest = np.concatenate([small * rng.uniform(1.0, 3.0, 400), large * rng.uniform(1.0, 1.1, 400)])
    table = fit_headroom(forecast, busiest, forecast)
    assert table is not None
    factors = table.multipliers(np.array([500.0, 7500.0]), 0.9)
    assert factors[0] > 2.0 * factors[1]


def test_without_busiest_minutes_the_step_mean_is_the_basis_and_with_too_little_nothing() -> None:
    forecast, busiest = noisy_steps(300, seed=3)
    unknown = np.full_like(busiest, np.nan)
    table = fit_headroom(forecast, unknown, busiest)
    assert table is not None
    assert table.basis == Basis.STEP_MEAN
    few = MIN_ROWS_PER_BAND - 1
    assert fit_headroom(forecast[:few], busiest[:few], busiest[:few]) is None
    assert fit_headroom(forecast, unknown, unknown) is None


def test_tied_forecasts_make_one_band_not_an_empty_one() -> None:
    forecast = np.full(500, 2000.0)
    busiest = np.linspace(1500.0, 4500.0, 500, dtype=np.float64)
    table = fit_headroom(forecast, busiest, forecast)
    assert table is not None
    assert table.band_edges == ()
    assert covered_share(table, forecast, busiest, 0.9) >= 0.9


def test_table_round_trips_and_malformed_tables_are_refused() -> None:
    forecast, busiest = noisy_steps(800, seed=4)
    table = fit_headroom(forecast, busiest, busiest)
    assert table is not None
    copy = HeadroomTable.from_json(json.loads(json.dumps(table.to_json())))
    np.testing.assert_allclose(copy.multipliers(forecast, 0.8), table.multipliers(forecast, 0.8), rtol=1e-3)
    good = table.to_json()
    falling = [list(reversed(band)) for band in good["factors"]]
    for broken in (
        {**good, "factors": falling},
        {**good, "factors": good["factors"][:-1]},
        {**good, "factors": [[float("nan")] * len(QUANTILE_GRID)] * len(good["factors"])},
        {**good, "band_edges": list(reversed(good["band_edges"]))},
        {key: value for key, value in good.items() if key != "factors"},
    ):
        with pytest.raises(HeadroomError):
            HeadroomTable.from_json(broken)


@pytest.fixture(scope="module")
def challenger_and_history():
    history = synthetic_history(MONDAY, 10)
    config = TrainingConfig(horizon_steps=4, n_estimators=10)
    rows = training_rows(history, config.horizon_steps, config.timezone)
    split = split_holdout(rows, len(history), 2, config.horizon_steps)
    return train_challenger(history, split, config, CAPACITY), history, rows, config


def test_challenger_measures_headroom_only_on_days_it_never_saw(challenger_and_history) -> None:
    challenger, history, rows, config = challenger_and_history
    split = split_holdout(rows, len(history), 2, config.horizon_steps)
    assert np.max(split.fit.step_indices) + config.horizon_steps < np.min(split.holdout.step_indices)
    assert challenger.headroom is not None
    assert challenger.headroom.basis == Basis.BUSIEST_MINUTE
    assert challenger.headroom.rows == len(split.holdout.targets)
    # The synthetic shop's busiest minute is 5-30 % above the step's mean.
    assert 1.0 <= float(np.median(challenger.headroom.multipliers(challenger.forecast, 0.8))) < 1.6


def test_served_model_sizes_with_its_table_and_refuses_a_broken_one(challenger_and_history) -> None:
    challenger, history, rows, config = challenger_and_history
    model = build_model(history, config, CAPACITY, rows=rows, headroom=challenger.headroom)
    blob = model.ensemble.to_npz()
    metadata = ModelMetadata.from_json(model.metadata.with_artifact(blob, "models/model.npz").to_json())
    served = load_verified(blob, metadata, BOUNDS)
    assert served.headroom is not None
    row = np.zeros(len(FEATURE_NAMES))
    forecast = served.forecast(row, np.log1p(3000.0), 0.8)
    assert forecast.headroom_basis == Basis.BUSIEST_MINUTE
    expected = served.headroom.multipliers(np.array([forecast.demand_mean]), 0.8)[0]
    assert forecast.headroom == pytest.approx(expected)
    assert forecast.demand_upper == pytest.approx(forecast.demand_mean * expected)

    broken = dataclasses.replace(metadata, headroom={**metadata.headroom, "factors": [[-1.0]]})
    with pytest.raises(ModelIntegrityError, match="headroom"):
        load_verified(blob, broken, BOUNDS)

    # A model from before the table existed still serves, sized on its trees.
    legacy = load_verified(blob, dataclasses.replace(metadata, headroom={}), BOUNDS)
    old_style = legacy.forecast(row, np.log1p(3000.0), 0.8)
    assert old_style.headroom_basis == PER_TREE_QUANTILE
    assert old_style.demand_upper >= old_style.demand_mean
