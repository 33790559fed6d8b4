"""Headroom: how far above the mean forecast capacity must reach, learned nightly.

The forest forecasts the mean demand of the target 5-minute step, but instances must
serve that step's busiest minute, and the forecast itself is off by some amount. Both are
measured at once where the model never looked: on the held-out days of the nightly job,
each step's *factor*, the busiest minute at the target over the challenger's mean
forecast. Relative noise shrinks as volume grows, so the factors are grouped in bands of
forecast size, and each band keeps their quantiles. Predict sizes capacity for

    forecast mean x the band's factor at HEADROOM_QUANTILE (never below 1)

so that on the held-out days the busiest minute stayed within it in HEADROOM_QUANTILE of
the steps of that size. Rounding up to whole instances (half an instance on average),
the scale-in stabilization window and target tracking add to that; the backtest measures
what the sum leaves under-provisioned. The table travels in the model's manifest, so
predict and the backtest read the very numbers the nightly job measured.

Conditioned on recent burstiness (`HEADROOM_CONDITION` recent-burstiness, off by default):
after the forecast's size, the condition that explains most of the factor's spread on
NASA 1995 is how bursty the last hour was, each step's busiest minute over its mean (on
NAB ELB nothing does; docs/backtest.md, "Conditional headroom"). Splitting two held-out
days into more bands leaves each too few rows, so the table is not split: each held-out
factor is divided by the scale sqrt(recent burstiness) of its anchor, the bands keep the
quantiles of those scaled factors (normalised conformal scores), and predict multiplies
back by its own anchor's scale:

    forecast mean x the band's scaled factor at HEADROOM_QUANTILE x sqrt(recent burstiness)

(the product within [1, MAX_FACTOR]).

One function computes the condition (`recent_burstiness`) for the held-out rows, predict's
anchor and the backtest's anchors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.series import FloatArray, Metric, MetricHistory

QUANTILE_GRID: tuple[float, ...] = tuple(round(0.5 + 0.01 * k, 2) for k in range(50))
"""0.50, 0.51, ... 0.99: the quantiles each band keeps (predict interpolates between them)."""
MAX_BANDS = 4
MIN_ROWS_PER_BAND = 96
"""Eight hours of held-out steps per band: enough for the 0.9 quantile to mean something."""
MIN_FORECAST_PER_MINUTE = 1.0
"""Factors on forecasts under one request a minute say nothing: they are taken against 1."""
MAX_FACTOR = 10.0
"""Factors are kept (and a manifest's refused) above 10: capacity ten times the forecast
mean at a quantile is no forecast any more, and the table travels in a manifest that
whoever writes the bucket can edit, so it must not multiply capacity without bound.
Below 1 is harmless (multipliers never go under 1: it is a quantile where the forecast
overshot), so the range is [0, MAX_FACTOR]."""


BURSTINESS_STEPS = 12
"""The last hour: replayed on NASA's first 20 days, means over 3, 6, 12 or 24 steps size
within 0.3 % of each other, and 12 is the only one never dearer than the unscaled table
(docs/backtest.md, "Conditional headroom")."""
MAX_BURSTINESS = float(STEP_SECONDS // 60)
"""A step's busiest minute is at most its whole Sum, five times its mean per minute."""
BURSTINESS_EXPONENT = 0.5
"""The scale is burstiness ** 0.5: on the same replay an exponent of 1 is dearer from 10 %
of steps over the sizing, 0.25 gains less, 0.75 is dearer from 20 %."""


class Condition:
    """What the headroom table's factors are scaled by (its `scaled_by`)."""

    NONE = "none"
    """Unscaled: the table of every model published before conditions existed."""
    RECENT_BURSTINESS = "recent-burstiness"
    """Scaled by sqrt(`recent_burstiness`) at the anchor."""


CONDITIONS = (Condition.NONE, Condition.RECENT_BURSTINESS)
FACTORS_KEY = {Condition.NONE: "factors", Condition.RECENT_BURSTINESS: "burstiness_scaled_factors"}
"""Where a manifest holds the factors of each kind of table. A scaled table's factors are
smaller than the sizing they stand for, so they are not under "factors": code from before
conditions existed finds no "factors", refuses the manifest and falls back to target
tracking, rather than serve them unscaled (a rollback under-provisioned by the scale)."""


def recent_burstiness(history: MetricHistory) -> FloatArray:
    """Per step, the mean over its last BURSTINESS_STEPS steps (itself included) of each
    step's busiest minute over its mean demand per minute, each clipped to [1,
    MAX_BURSTINESS]; NaN where no step of the hour knows both. Looks only back, so the
    value at a step is the same whatever follows it (predict's history ends at its anchor,
    the backtest's runs on)."""
    demand = history.demand_per_minute()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(demand > 0, history[Metric.BUSIEST_MINUTE] / demand, np.nan)
    ratio = np.clip(ratio, 1.0, MAX_BURSTINESS)
    known = np.isfinite(ratio)
    sums = np.cumsum(np.where(known, ratio, 0.0))
    counts = np.cumsum(known)
    before = np.arange(len(ratio)) - BURSTINESS_STEPS
    window_sums = sums - np.where(before >= 0, sums[np.maximum(before, 0)], 0.0)
    window_counts = counts - np.where(before >= 0, counts[np.maximum(before, 0)], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        burstiness: FloatArray = np.where(
            window_counts > 0, window_sums / np.maximum(window_counts, 1), np.nan
        )
    return burstiness


def burstiness_scale(burstiness: FloatArray) -> FloatArray:
    """sqrt(burstiness) within [1, sqrt(MAX_BURSTINESS)]; 1 where it is unknown, so that
    a missing hour sizes as an unscaled table would."""
    values = np.asarray(burstiness, dtype=np.float64)
    scale: FloatArray = np.where(
        np.isfinite(values), np.clip(values, 1.0, MAX_BURSTINESS) ** BURSTINESS_EXPONENT, 1.0
    )
    return scale


class HeadroomError(ValueError):
    """A headroom table in a manifest is malformed."""


class Basis:
    BUSIEST_MINUTE = "busiest minute"
    """Factors measured on the busiest minute (1-minute RequestCount was there)."""
    STEP_MEAN = "5-minute mean"
    """Factors measured on the step's mean demand: the busiest minute was not recorded,
    so the table covers the forecast's error but not the bursts inside a step."""


@dataclass(frozen=True)
class HeadroomTable:
    band_edges: tuple[float, ...]
    """Forecast mean demand (requests per minute) at which each band after the first starts."""
    factors: tuple[tuple[float, ...], ...]
    """Per band, the factor (busiest minute / forecast) at each quantile of QUANTILE_GRID."""
    rows: int
    basis: str
    scaled_by: str = Condition.NONE
    """`Condition`: what each factor is multiplied by at serve time (none: today's table)."""

    def __post_init__(self) -> None:
        if self.scaled_by not in CONDITIONS:
            raise HeadroomError(f"headroom scaled_by must be one of {list(CONDITIONS)}")
        if len(self.factors) != len(self.band_edges) + 1:
            raise HeadroomError("a headroom table needs one row of factors per band")
        if not all(np.isfinite(self.band_edges)) or list(self.band_edges) != sorted(self.band_edges):
            raise HeadroomError("headroom band edges must be finite and ascend")
        for band in self.factors:
            values = np.asarray(band, dtype=np.float64)
            if len(values) != len(QUANTILE_GRID) or not np.all(np.isfinite(values)):
                raise HeadroomError("headroom factors must be finite and one per grid quantile")
            if np.any(values < 0) or np.any(values > MAX_FACTOR):
                raise HeadroomError(f"headroom factors must lie in [0, {MAX_FACTOR:g}]")
            if np.any(np.diff(values) < -1e-9):
                raise HeadroomError("headroom factors must not fall as the quantile rises")

    def multipliers(
        self, forecast_mean: FloatArray, quantile: float, burstiness: FloatArray | None = None
    ) -> FloatArray:
        """The factor each forecast is sized up by at `quantile`, within [1, MAX_FACTOR];
        a table scaled by recent burstiness needs each row's (`recent_burstiness`)."""
        bands = np.searchsorted(np.asarray(self.band_edges), np.asarray(forecast_mean), side="right")
        at_quantile = np.array([np.interp(quantile, QUANTILE_GRID, band) for band in self.factors])
        factors = at_quantile[bands]
        if self.scaled_by == Condition.RECENT_BURSTINESS:
            if burstiness is None:
                raise ValueError("this headroom table is scaled by recent burstiness: pass it")
            factors = factors * burstiness_scale(burstiness)
        # The scale can lift a factor of MAX_FACTOR further: the bound holds for the product.
        multipliers: FloatArray = np.clip(factors, 1.0, MAX_FACTOR)
        return multipliers

    def describe(self, quantiles: tuple[float, ...] = (0.5, 0.75, 0.9)) -> dict[str, Any]:
        """A readable summary for logs and notices."""
        lows = (0.0, *self.band_edges)
        highs = (*self.band_edges, None)
        summary: dict[str, Any] = {"basis": self.basis, "rows": self.rows}
        if self.scaled_by != Condition.NONE:
            summary["scaled_by"] = self.scaled_by
        return {
            **summary,
            "bands": [
                {
                    "forecast_from_per_minute": round(low, 1),
                    "forecast_to_per_minute": None if high is None else round(high, 1),
                    **{f"q{q:g}": round(float(np.interp(q, QUANTILE_GRID, band)), 3) for q in quantiles},
                }
                for low, high, band in zip(lows, highs, self.factors, strict=True)
            ],
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "basis": self.basis,
            "rows": self.rows,
            "band_edges": [round(edge, 4) for edge in self.band_edges],
            FACTORS_KEY[self.scaled_by]: [[round(value, 4) for value in band] for band in self.factors],
        }
        # Unscaled, the manifest is written as before conditions existed, key for key.
        if self.scaled_by != Condition.NONE:
            data["scaled_by"] = self.scaled_by
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadroomTable:
        scaled_by = data.get("scaled_by", Condition.NONE)
        if scaled_by not in CONDITIONS:
            raise HeadroomError(f"headroom scaled_by must be one of {list(CONDITIONS)}")
        if any(key in data for kind, key in FACTORS_KEY.items() if kind != scaled_by):
            raise HeadroomError(f"a headroom table scaled by {scaled_by} holds another kind's factors")
        try:
            return cls(
                band_edges=tuple(float(edge) for edge in data["band_edges"]),
                factors=tuple(tuple(float(value) for value in band) for band in data[FACTORS_KEY[scaled_by]]),
                rows=int(data["rows"]),
                basis=str(data["basis"]),
                scaled_by=scaled_by,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise HeadroomError(f"headroom table is not valid: {error}") from error


def fit_headroom(
    forecast_mean: FloatArray,
    busiest_minute: FloatArray,
    step_mean: FloatArray,
    burstiness: FloatArray | None = None,
) -> HeadroomTable | None:
    """The table from held-out forecasts and the demand that followed them (NaN where
    unknown). With `burstiness` (`recent_burstiness` at each row's anchor) and the
    busiest minute known, each factor is divided by its anchor's `burstiness_scale` and
    the table says so (`scaled_by`); on step means there is no burst to scale.

    The busiest minute is the truth where at least one band's worth of steps has it;
    otherwise the step's mean demand is (`basis` says which). None when even that is too
    little: predict then sizes for the forest's per-tree quantile, as for models without a
    table.
    """
    forecast = np.asarray(forecast_mean, dtype=np.float64)
    truth, basis = np.asarray(busiest_minute, dtype=np.float64), Basis.BUSIEST_MINUTE
    usable = np.isfinite(forecast) & np.isfinite(truth)
    if np.sum(usable) < MIN_ROWS_PER_BAND:
        truth, basis = np.asarray(step_mean, dtype=np.float64), Basis.STEP_MEAN
        usable = np.isfinite(forecast) & np.isfinite(truth)
    rows = int(np.sum(usable))
    if rows < MIN_ROWS_PER_BAND:
        return None
    forecast, truth = forecast[usable], truth[usable]
    factors = np.minimum(truth / np.maximum(forecast, MIN_FORECAST_PER_MINUTE), MAX_FACTOR)
    scaled_by = Condition.NONE
    if burstiness is not None and basis == Basis.BUSIEST_MINUTE:
        factors = factors / burstiness_scale(np.asarray(burstiness, dtype=np.float64)[usable])
        scaled_by = Condition.RECENT_BURSTINESS
    bands = min(MAX_BANDS, rows // MIN_ROWS_PER_BAND)
    edges = list(np.unique(np.quantile(forecast, np.linspace(0, 1, bands + 1)[1:-1])))
    # Ties (a flat night of equal forecasts) can leave a band thin: merge it into a neighbour.
    while edges:
        sizes = np.bincount(np.searchsorted(edges, forecast, side="right"), minlength=len(edges) + 1)
        thin = int(np.argmin(sizes))
        if sizes[thin] >= MIN_ROWS_PER_BAND // 2:
            break
        del edges[max(thin - 1, 0)]
    members = np.searchsorted(edges, forecast, side="right")
    table = [np.quantile(factors[members == band], QUANTILE_GRID) for band in range(len(edges) + 1)]
    return HeadroomTable(
        band_edges=tuple(float(edge) for edge in edges),
        factors=tuple(tuple(float(value) for value in band) for band in table),
        rows=rows,
        basis=basis,
        scaled_by=scaled_by,
    )
