"""Exact tests of the headroom table: its validation at each bound, which band a forecast
falls in at a band edge, how thin bands are merged, and the summary and JSON it writes.

Every expected value is worked out by hand in the comments (np.quantile interpolates
linearly: the q-quantile of n sorted values sits at position q * (n - 1)). Written against
the survivors of a mutation run (`make mutate`, docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saleor_scaling.headroom import QUANTILE_GRID, Basis, HeadroomError, HeadroomTable, fit_headroom

NAN = math.nan


def flat(value: float) -> tuple[float, ...]:
    return (value,) * len(QUANTILE_GRID)


def table(edges: tuple[float, ...], *bands: tuple[float, ...]) -> HeadroomTable:
    return HeadroomTable(band_edges=edges, factors=bands, rows=200, basis=Basis.BUSIEST_MINUTE)


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "bands", "message"),
    [
        ((1000.0,), (flat(1.2),), "a headroom table needs one row of factors per band"),
        ((), (flat(1.2), flat(1.2)), "a headroom table needs one row of factors per band"),
        ((2000.0, 1000.0), (flat(1.2),) * 3, "headroom band edges must be finite and ascend"),
        ((math.inf,), (flat(1.2),) * 2, "headroom band edges must be finite and ascend"),
        ((), ((1.2,) * 49,), "headroom factors must be finite and one per grid quantile"),
        ((), ((1.2,) * 49 + (NAN,),), "headroom factors must be finite and one per grid quantile"),
        ((), ((-0.01,) + (1.2,) * 49,), r"headroom factors must lie in \[0, 10\]"),  # below only
        ((), ((1.2,) * 49 + (10.01,),), r"headroom factors must lie in \[0, 10\]"),  # above only
        ((), ((1.2,) * 25 + (1.19,) * 25,), "headroom factors must not fall as the quantile rises"),
    ],
)
def test_a_malformed_table_is_refused_with_its_reason(edges, bands, message):
    with pytest.raises(HeadroomError, match=f"^{message}$"):
        HeadroomTable(band_edges=edges, factors=bands, rows=200, basis=Basis.BUSIEST_MINUTE)


@pytest.mark.parametrize(
    "band",
    [
        flat(0.0),  # the lowest factor allowed
        flat(0.5),  # under 1 is harmless: multipliers never go under 1
        flat(10.0),  # the highest
        (1.2,) * 25 + (1.2 - 1e-12,) * 25,  # float noise is no fall
        (1e-9,) * 25 + (0.0,) * 25,  # a fall of exactly the tolerance (1e-9 - 0, exact in floats)
    ],
)
def test_a_table_at_the_bounds_is_accepted(band):
    assert table((), band).factors == (band,)


# --- multipliers ---------------------------------------------------------------------


def test_a_forecast_on_a_band_edge_belongs_to_the_band_above():
    two_bands = table((1000.0,), flat(1.2), flat(1.5))
    forecast = np.array([0.0, 999.9, 1000.0, 1000.1, 1e9])
    np.testing.assert_array_equal(two_bands.multipliers(forecast, 0.9), [1.2, 1.2, 1.5, 1.5, 1.5])


def test_multipliers_interpolate_between_grid_quantiles_and_never_go_under_one():
    # Band 0: 1.0 at q=0.50, rising by 0.04 per grid step of 0.01 (1.22 at q=0.555).
    # Band 1: 0.5 everywhere, raised to 1.
    rising = tuple(1.0 + 4.0 * (q - 0.5) for q in QUANTILE_GRID)
    two_bands = table((1000.0,), rising, flat(0.5))
    forecast = np.array([10.0, 2000.0])
    np.testing.assert_allclose(two_bands.multipliers(forecast, 0.555), [1.22, 1.0])
    np.testing.assert_allclose(two_bands.multipliers(forecast, 0.6), [1.4, 1.0])
    np.testing.assert_allclose(two_bands.multipliers(forecast, 0.75), [2.0, 1.0])


# --- describe, to_json, from_json ----------------------------------------------------


def test_describe_is_exact():
    # Band 0 rises linearly with the quantile: 1.0 at q=0.5, 1.25 at 0.75, 1.4 at 0.9.
    rising = tuple(1.0 + (q - 0.5) for q in QUANTILE_GRID)
    described = table((1234.56,), rising, flat(1.23456)).describe()
    assert described == {
        "basis": "busiest minute",
        "rows": 200,
        "bands": [
            {
                "forecast_from_per_minute": 0.0,
                "forecast_to_per_minute": 1234.6,
                "q0.5": 1.0,
                "q0.75": 1.25,
                "q0.9": 1.4,
            },
            {
                "forecast_from_per_minute": 1234.6,
                "forecast_to_per_minute": None,
                "q0.5": 1.235,
                "q0.75": 1.235,
                "q0.9": 1.235,
            },
        ],
    }


def test_describe_reads_the_quantiles_asked_for():
    assert table((), flat(2.0)).describe(quantiles=(0.99,))["bands"] == [
        {"forecast_from_per_minute": 0.0, "forecast_to_per_minute": None, "q0.99": 2.0}
    ]


def test_json_keeps_four_decimals_and_reads_back():
    written = table((1000.123456,), flat(1.23456789), flat(2.0)).to_json()
    assert written == {
        "basis": "busiest minute",
        "rows": 200,
        "band_edges": [1000.1235],
        "factors": [[1.2346] * 50, [2.0] * 50],
    }
    assert HeadroomTable.from_json(written) == table((1000.1235,), flat(1.2346), flat(2.0))


def test_json_rows_are_read_as_a_number():
    written = table((), flat(1.5)).to_json() | {"rows": "384"}
    assert HeadroomTable.from_json(written).rows == 384


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "headroom table is not valid: 'band_edges'"),
        (
            {"band_edges": [], "factors": [[1.5] * 50], "rows": "many", "basis": "x"},
            "headroom table is not valid: invalid literal for int() with base 10: 'many'",
        ),
    ],
)
def test_unreadable_json_is_a_headroom_error_naming_the_fault(data, message):
    with pytest.raises(HeadroomError) as raised:
        HeadroomTable.from_json(data)
    assert str(raised.value) == message


# --- fit_headroom ----------------------------------------------------------------------


def fit(groups: list[tuple[int, float, float]]) -> HeadroomTable | None:
    """Held-out steps in groups of (count, forecast, factor): busiest = forecast x factor;
    the step's mean demand is the forecast itself (factor 1)."""
    forecast = np.concatenate([np.full(count, value) for count, value, _ in groups])
    busiest = np.concatenate([np.full(count, value * factor) for count, value, factor in groups])
    return fit_headroom(forecast, busiest, forecast.copy())


def test_exactly_one_band_of_rows_is_enough():
    fitted = fit([(96, 1000.0, 1.5)])
    assert fitted == HeadroomTable(band_edges=(), factors=(flat(1.5),), rows=96, basis=Basis.BUSIEST_MINUTE)


def test_one_busiest_minute_short_falls_back_to_the_step_mean():
    forecast = np.full(96, 1000.0)
    busiest = np.full(96, 1500.0)
    busiest[0] = NAN
    fitted = fit_headroom(forecast, busiest, np.full(96, 1100.0))
    assert fitted == HeadroomTable(band_edges=(), factors=(flat(1.1),), rows=96, basis=Basis.STEP_MEAN)


def test_one_row_short_of_a_band_is_no_table():
    assert fit([(95, 1000.0, 1.5)]) is None


def test_factors_are_taken_against_one_request_and_capped_at_ten():
    # Forecast 0.5/min, busiest 3/min: 3 / max(0.5, 1) = 3. Forecast 2, busiest 50: 25, capped.
    assert fit([(96, 0.5, 6.0)]) == HeadroomTable((), (flat(3.0),), 96, Basis.BUSIEST_MINUTE)
    assert fit([(96, 2.0, 25.0)]) == HeadroomTable((), (flat(10.0),), 96, Basis.BUSIEST_MINUTE)


def test_a_band_of_exactly_half_a_band_is_kept_and_edges_go_to_the_band_above():
    # 384 rows: four bands, edges at positions 95.75, 191.5 and 287.25 of the sorted forecasts:
    # 200 (rows 95 and 96 are both 200), 250 (between 200 and 300), 325 (between 300 and 400).
    # Bands (a forecast on an edge belongs above it): 48 x 100 | 144 x 200 | 96 x 300 | 96 x 400.
    # The thinnest has 48 = 96 // 2 rows: kept.
    fitted = fit([(48, 100.0, 1.1), (144, 200.0, 1.2), (96, 300.0, 1.3), (96, 400.0, 1.4)])
    assert fitted == HeadroomTable(
        band_edges=(200.0, 250.0, 325.0),
        factors=(flat(1.1), flat(1.2), flat(1.3), flat(1.4)),
        rows=384,
        basis=Basis.BUSIEST_MINUTE,
    )


def test_a_band_under_half_a_band_is_merged_into_the_one_above_it():
    # As above with 40 rows of 100 and 152 of 200: band 0 has 40 < 48 rows and goes. Its
    # edge (200) is deleted, so band 0 is now 40 x 100 and 152 x 200; 40 / 192 of it is
    # under every quantile from 0.5 up, so its factors are all 1.2.
    fitted = fit([(40, 100.0, 1.1), (152, 200.0, 1.2), (96, 300.0, 1.3), (96, 400.0, 1.4)])
    assert fitted == HeadroomTable(
        band_edges=(250.0, 325.0),
        factors=(flat(1.2), flat(1.3), flat(1.4)),
        rows=384,
        basis=Basis.BUSIEST_MINUTE,
    )


def test_a_thin_band_above_the_second_is_merged_into_the_band_below_it():
    # 96 x 100, 96 x 200, 20 x 300, 172 x 400: edges 175 (position 95.75, between 100 and
    # 200), 250 (191.5, between 200 and 300), 400 (287.25). Bands: 96 | 96 | 20 | 172.
    # Band 2 is thin: its lower edge (250) goes, and it joins band 1 (both factor 1.2).
    fitted = fit([(96, 100.0, 1.1), (96, 200.0, 1.2), (20, 300.0, 1.2), (172, 400.0, 1.4)])
    assert fitted == HeadroomTable(
        band_edges=(175.0, 400.0),
        factors=(flat(1.1), flat(1.2), flat(1.4)),
        rows=384,
        basis=Basis.BUSIEST_MINUTE,
    )
