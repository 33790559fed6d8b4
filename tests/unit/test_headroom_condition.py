"""Headroom conditioned on recent burstiness (issue 23, item 3): the condition computed by
hand on a made-up history, a held-out set whose factor depends on it sized with literal
factors, old tables serving exactly as before, and forged ones refused whole.

Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from saleor_scaling.headroom import (
    CONDITIONS,
    QUANTILE_GRID,
    Basis,
    Condition,
    HeadroomError,
    HeadroomTable,
    burstiness_scale,
    fit_headroom,
    recent_burstiness,
)
from saleor_scaling.model import (
    ModelIntegrityError,
    ModelMetadata,
    ServingBounds,
    load_verified,
)
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import HEADROOM_CONDITIONS, ConfigurationError, RetrainSettings

NAN = math.nan
MONDAY = 1_700_438_400
FIXTURE = Path(__file__).with_name("data") / "model-py311"


def history_of(demand_per_minute: list[float], busiest: list[float]) -> MetricHistory:
    steps = len(demand_per_minute)
    values = {metric: np.full(steps, NAN) for metric in Metric}
    values[Metric.REQUESTS] = np.array(demand_per_minute) * 5.0  # a Sum over 5 minutes
    values[Metric.BUSIEST_MINUTE] = np.array(busiest)
    return MetricHistory(start=MONDAY, values=values)


def flat(value: float) -> tuple[float, ...]:
    return (value,) * len(QUANTILE_GRID)


# --- the condition -------------------------------------------------------------------


def test_recent_burstiness_is_the_mean_busiest_over_mean_of_the_last_hour():
    # Per step busiest / mean: 2; unknown (no demand); unknown (no busiest minute);
    # 0.5 -> clipped to 1; 8 -> clipped to 5 (a busiest minute is at most the step's Sum);
    # then 1.5 for steps 5..13.
    demand = [100.0, 0.0, 100.0, 100.0, 100.0] + [100.0] * 9
    busiest = [200.0, 0.0, NAN, 50.0, 800.0] + [150.0] * 9
    burstiness = recent_burstiness(history_of(demand, busiest))
    expected = [
        2.0,  # [2]
        2.0,  # [2] (step 1 unknown)
        2.0,  # [2]
        1.5,  # [2, 1]
        8 / 3,  # [2, 1, 5]
        2.375,  # [2, 1, 5, 1.5]: 9.5 / 4
        2.2,  # + 1.5: 11 / 5
        12.5 / 6,
        14 / 7,
        15.5 / 8,
        17 / 9,
        1.85,  # steps 0..11: [2, 1, 5] + 7 x 1.5 = 18.5 over 10
        1.8,  # steps 1..12 (step 0 left the hour): [1, 5] + 8 x 1.5 = 18 over 10 known
        19.5 / 11,  # steps 2..13: [1, 5] + 9 x 1.5 = 19.5 over 11 known
    ]
    np.testing.assert_allclose(burstiness, expected, rtol=1e-12)


def test_recent_burstiness_is_unknown_without_a_known_step_in_the_hour():
    demand = [NAN] * 3 + [100.0] + [NAN] * 12
    busiest = [NAN] * 3 + [300.0] + [NAN] * 12
    burstiness = recent_burstiness(history_of(demand, busiest))
    # Known from step 3 (ratio 3) for twelve steps (3..14), unknown again at 15.
    np.testing.assert_array_equal(np.isnan(burstiness), [True] * 3 + [False] * 12 + [True])
    np.testing.assert_array_equal(burstiness[3:15], [3.0] * 12)


def test_recent_burstiness_at_an_anchor_does_not_depend_on_what_follows():
    # Predict's history ends at its anchor; the backtest computes every anchor at once.
    rng = np.random.default_rng(3)
    demand = list(rng.uniform(10.0, 500.0, 60))
    busiest = list(np.array(demand) * rng.uniform(1.0, 4.0, 60))
    whole = recent_burstiness(history_of(demand, busiest))
    for anchor in (0, 5, 11, 12, 40, 59):
        cut = recent_burstiness(history_of(demand[: anchor + 1], busiest[: anchor + 1]))
        assert cut[anchor] == whole[anchor]


def test_the_scale_is_the_square_root_within_bounds_and_one_where_unknown():
    np.testing.assert_allclose(
        burstiness_scale(np.array([NAN, 0.5, 1.0, 4.0, 9.0])),
        [1.0, 1.0, 1.0, 2.0, 2.23606797749979],  # 9 is clipped to 5
        rtol=1e-12,
    )


# --- fitting on a held-out set where the factor depends on burstiness ----------------


def held_out_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """96 held-out steps, all forecast at 1,000 a minute: 48 after a calm hour (burstiness
    1) whose busiest minute reached 1,200, and 48 after a bursty one (burstiness 4) whose
    busiest minute reached 2,400."""
    forecast = np.full(96, 1000.0)
    burstiness = np.array([1.0] * 48 + [4.0] * 48)
    busiest = np.array([1200.0] * 48 + [2400.0] * 48)
    return forecast, busiest, burstiness


def test_scaled_factors_size_calm_and_bursty_steps_apart():
    forecast, busiest, burstiness = held_out_set()
    table = fit_headroom(forecast, busiest, busiest / 1.2, burstiness)
    assert table is not None
    # Factors 1.2 and 2.4 over scales 1 and 2: every scaled factor is 1.2, one band.
    assert table.scaled_by == Condition.RECENT_BURSTINESS
    assert table.band_edges == ()
    np.testing.assert_allclose(table.factors[0], flat(1.2), rtol=1e-12)
    sized = table.multipliers(np.full(4, 1000.0), 0.6, np.array([1.0, 4.0, NAN, 9.0]))
    # Calm 1.2; bursty 1.2 x 2; unknown as calm; beyond the bound, as at 5: 1.2 x sqrt(5).
    np.testing.assert_allclose(sized, [1.2, 2.4, 1.2, 2.683281572999748], rtol=1e-12)


def test_unscaled_the_same_set_sizes_every_step_for_the_bursty_ones():
    forecast, busiest, _ = held_out_set()
    table = fit_headroom(forecast, busiest, busiest / 1.2)
    assert table is not None
    assert table.scaled_by == Condition.NONE
    # 48 x 1.2 then 48 x 2.4: the 0.6 quantile sits at position 57 (2.4), the 0.5 at 47.5.
    np.testing.assert_allclose(table.multipliers(np.full(2, 1000.0), 0.6), [2.4, 2.4], rtol=1e-12)
    np.testing.assert_allclose(table.multipliers(np.full(2, 1000.0), 0.5), [1.8, 1.8], rtol=1e-12)


def test_on_step_means_there_is_no_burst_to_scale():
    forecast, _, burstiness = held_out_set()
    step_mean = np.array([1100.0] * 96)
    table = fit_headroom(forecast, np.full(96, NAN), step_mean, burstiness)
    assert table is not None
    assert table.basis == Basis.STEP_MEAN
    assert table.scaled_by == Condition.NONE
    np.testing.assert_allclose(table.factors[0], flat(1.1), rtol=1e-12)


def test_a_scaled_table_needs_the_condition_and_never_multiplies_past_the_bound():
    table = HeadroomTable((), (flat(10.0),), 200, Basis.BUSIEST_MINUTE, Condition.RECENT_BURSTINESS)
    with pytest.raises(ValueError, match="scaled by recent burstiness"):
        table.multipliers(np.array([1000.0]), 0.9)
    # 10 x sqrt(5) would be 22.4: the product keeps MAX_FACTOR.
    np.testing.assert_array_equal(table.multipliers(np.array([1000.0]), 0.9, np.array([5.0])), [10.0])


# --- old tables, and forged ones -----------------------------------------------------

OLD_TABLE = {
    "basis": "busiest minute",
    "rows": 576,
    "band_edges": [812.5],
    "factors": [list(flat(1.3)), list(flat(1.1))],
}


def test_an_old_table_reads_and_writes_back_key_for_key_and_ignores_the_condition():
    table = HeadroomTable.from_json(OLD_TABLE)
    assert table.scaled_by == Condition.NONE
    assert table.to_json() == OLD_TABLE
    assert "scaled_by" not in table.describe()
    forecast = np.array([100.0, 900.0])
    np.testing.assert_array_equal(table.multipliers(forecast, 0.7, np.array([5.0, 5.0])), [1.3, 1.1])


def test_the_python311_model_serves_its_recorded_forecasts_whatever_the_burstiness():
    blob = (FIXTURE / "model.npz").read_bytes()
    metadata = ModelMetadata.from_json((FIXTURE / "manifest.json").read_text())
    expected = json.loads((FIXTURE / "forecasts.json").read_text())
    served = load_verified(blob, metadata, ServingBounds(expected["capacity_per_instance"]))
    assert served.headroom is not None
    assert served.headroom.scaled_by == Condition.NONE
    rows = np.array(expected["rows"])
    forecasts = served.forecast_rows(
        rows, np.array(expected["log_levels"]), expected["quantile"], np.full(len(rows), 5.0)
    )
    np.testing.assert_allclose([f.demand_upper for f in forecasts], expected["demand_upper"], rtol=1e-12)


def test_a_scaled_table_round_trips_through_a_manifest():
    bands = (flat(1.4), flat(1.2))
    table = HeadroomTable((500.0,), bands, 300, Basis.BUSIEST_MINUTE, Condition.RECENT_BURSTINESS)
    data = table.to_json()
    assert data["scaled_by"] == "recent-burstiness"
    # Code from before conditions read data["factors"]: finding none, it refuses the
    # manifest and falls back, instead of sizing for the scaled factors unscaled.
    assert "factors" not in data
    assert data["burstiness_scaled_factors"] == [list(flat(1.4)), list(flat(1.2))]
    assert HeadroomTable.from_json(json.loads(json.dumps(data))) == table
    assert table.describe()["scaled_by"] == "recent-burstiness"


@pytest.mark.parametrize("scaled_by", ["recent_burstiness", "Recent-Burstiness", "", "none "])
def test_an_unknown_condition_is_refused(scaled_by):
    with pytest.raises(HeadroomError, match="headroom scaled_by must be one of"):
        HeadroomTable.from_json({**OLD_TABLE, "scaled_by": scaled_by})


def manifest_with(headroom: dict[str, object]) -> str:
    blob = (FIXTURE / "model.npz").read_bytes()
    metadata = ModelMetadata.from_json((FIXTURE / "manifest.json").read_text())
    forged = dataclasses.replace(metadata, headroom=headroom)
    return forged.with_artifact(blob, metadata.model_key).to_json()


@pytest.mark.parametrize(
    ("scaled_by", "message"),
    [
        ("volatility", "headroom scaled_by must be one of"),
        (7, "scaled_by, if any, a string"),
        (["recent-burstiness"], "scaled_by, if any, a string"),
        (None, "scaled_by, if any, a string"),
    ],
)
def test_a_manifest_with_a_forged_condition_is_refused_whole(scaled_by, message):
    with pytest.raises(ModelIntegrityError, match=message):
        ModelMetadata.from_json(manifest_with({**OLD_TABLE, "scaled_by": scaled_by}))


SCALED_TABLE = {
    "basis": "busiest minute",
    "rows": 576,
    "band_edges": [812.5],
    "scaled_by": "recent-burstiness",
    "burstiness_scaled_factors": [list(flat(1.3)), list(flat(1.1))],
}


@pytest.mark.parametrize(
    "table",
    [
        {**SCALED_TABLE, "factors": [list(flat(1.3)), list(flat(1.1))]},
        {**OLD_TABLE, "burstiness_scaled_factors": [list(flat(1.3)), list(flat(1.1))]},
        {key: value for key, value in SCALED_TABLE.items() if key != "scaled_by"},
    ],
    ids=["scaled with plain factors too", "unscaled with scaled factors too", "scaled factors, no scaled_by"],
)
def test_a_table_holding_another_kinds_factors_is_refused(table):
    with pytest.raises(HeadroomError, match="holds another kind's factors"):
        HeadroomTable.from_json(table)


def test_a_scaled_table_under_the_plain_key_is_refused():
    plain_key = {**OLD_TABLE, "scaled_by": "recent-burstiness"}
    with pytest.raises(ModelIntegrityError, match="factors as numbers"):
        ModelMetadata.from_json(manifest_with(plain_key))


def test_a_scaled_manifest_keeps_every_bound_of_an_unscaled_one():
    scaled = SCALED_TABLE
    assert ModelMetadata.from_json(manifest_with(scaled)).headroom == scaled
    five_bands = [list(flat(1.2))] * 5
    too_many = {**scaled, "band_edges": [1.0, 2.0, 3.0, 4.0], "burstiness_scaled_factors": five_bands}
    with pytest.raises(ModelIntegrityError, match="holds 5 bands, at most 4"):
        ModelMetadata.from_json(manifest_with(too_many))
    too_high = {**scaled, "burstiness_scaled_factors": [list(flat(1.3)), list(flat(10.5))]}
    with pytest.raises(ModelIntegrityError, match=r"must lie in \[0, 10\]"):
        ModelMetadata.from_json(manifest_with(too_high))
    falling = {**scaled, "burstiness_scaled_factors": [list(flat(1.3)), [1.2] * 25 + [1.1] * 25]}
    with pytest.raises(ModelIntegrityError, match="must not fall"):
        ModelMetadata.from_json(manifest_with(falling))


# --- the setting ---------------------------------------------------------------------

ENV = {"AUTO_SCALING_GROUP_NAME": "shop", "LOAD_BALANCER_FULL_NAME": "app/shop/123", "MODEL_BUCKET": "b"}


def test_the_setting_is_off_by_default_and_refuses_an_unknown_condition():
    assert HEADROOM_CONDITIONS == CONDITIONS
    assert RetrainSettings.from_env(ENV).headroom_condition == "none"
    on = RetrainSettings.from_env({**ENV, "HEADROOM_CONDITION": "recent-burstiness"})
    assert on.headroom_condition == "recent-burstiness"
    with pytest.raises(ConfigurationError, match="HEADROOM_CONDITION='volatility' must be one of"):
        RetrainSettings.from_env({**ENV, "HEADROOM_CONDITION": "volatility"})
