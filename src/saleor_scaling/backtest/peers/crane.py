"""Crane's EffectiveHorizontalPodAutoscaler with the DSP predictor (gocrane/crane).

Sources, sentence by sentence (pkg/prediction/dsp/{config,prediction,estimators,signal}.go,
pkg/prediction/accuracy/accuracy.go and docs/tutorials/using-effective-hpa-to-scaling-with-
effectiveness.md of the repository):
    * History: `defaultInternalConfig` reads `historyDuration: 15 days` at
      `historyResolution` (sampleInterval, 1 minute by default, at most an hour);
      `queryHistoryTimeSeries` asks for `historyDuration + 1 hour` ending now. Here the
      sample interval is the 5-minute step of the CloudWatch history the backtest holds.
    * Pre-processing (`preProcessTimeSeries`): "If a gap in time series is larger than one
      hour, drop all samples before" it; missing samples are filled on the line between
      their neighbours; the series is truncated to whole hours (from its end).
    * Period: `updateAggregateSignals` tests Hour, then Day, then Week with
      `isPeriodicTimeSeries` and takes the first periodic one; `signal.Truncate(cycle)`
      keeps whole cycles, and only "if nCycles >= 2" is an estimator chosen. Here the
      periodicity test (an FFT permutation threshold and an autocorrelation peak) is not
      replayed: a daily cycle is taken whenever two whole days are held, as for the
      daily-periodic shop traffic of these traces; without two days Crane predicts nothing.
    * Estimator (`bestEstimator`): every configured estimator forecasts the last cycle from
      the cycles before it and the one with the least `accuracy.PredictionError` (a MAPE
      whose under-forecasts are amplified by -ln(1 - x) / ln 1.25; MAE where an actual value
      is under 1e-3) is chosen; the default list is 8 FFT estimators (minNumOfSpectrumItems
      3 with lowAmplitudeThreshold 1.0, and 50 with 0.05; marginFraction 0.01, 0.10, 0.15
      and 0.20 each).
    * FFT estimator (`fftEstimator.GetEstimation`): spectrum amplitudes |X_k| / N; of the
      first half (without k = 0) sorted descending, the threshold is the
      maxNumOfSpectrumItems-th (default 100), raised to lowAmplitudeThreshold, then lowered
      to the minNumOfSpectrumItems-th where that is smaller; components under it *and*
      above highFrequencyThreshold (1 / 3600 Hz) are zeroed; the inverse transform's last
      cycle (real part, values <= 0 set to 0.01) times (1 + marginFraction) is the next
      cycle's forecast, timestamped from the last sample + one interval.
    * EHPA: `QueryRealtimePredictedValues` takes the maximum predicted value from now
      (truncated to the interval) to one hour later (`defaultFuture`;
      predictionWindowSeconds 3600 in the tutorial); the HPA gets the prediction metric and
      the "origin metric ... to fall back to baseline", and "The **largest** one will be
      picked as the new scale".
    * The predictor refreshes on `UpdateInterval` (not documented in these files); here once
      an hour (every 12th step of the trace).

On AWS the EHPA would be a controller setting the group's desired capacity every 5 minutes,
with target tracking alongside; it sets desired capacity and the MinSize floor in one call,
as predict does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from saleor_scaling.backtest.peers.common import MINUTES_PER_STEP, replicas_for
from saleor_scaling.series import FloatArray

DAY_SAMPLES = 1440 // MINUTES_PER_STEP
HOUR_SAMPLES = 60 // MINUTES_PER_STEP
SAMPLE_RATE = 1.0 / (MINUTES_PER_STEP * 60)
HIGH_FREQUENCY_THRESHOLD = 1.0 / 3600.0
MAX_SPECTRUM_ITEMS = 100
FFT_MIN_VALUE = 0.01


@dataclass(frozen=True)
class FftEstimator:
    min_spectrum_items: int
    low_amplitude_threshold: float
    margin_fraction: float
    max_spectrum_items: int = MAX_SPECTRUM_ITEMS


DEFAULT_ESTIMATORS: tuple[FftEstimator, ...] = tuple(
    FftEstimator(items, threshold, margin)
    for items, threshold in ((3, 1.0), (50, 0.05))
    for margin in (0.01, 0.10, 0.15, 0.20)
)


@dataclass(frozen=True)
class CraneSettings:
    target_value: float = 1000.0
    """The HPA's per-instance target (requests per instance per minute)."""
    history_days: float = 15.0
    prediction_window_minutes: int = 60
    estimators: tuple[FftEstimator, ...] = field(default=DEFAULT_ESTIMATORS)

    def __post_init__(self) -> None:
        if self.target_value <= 0:
            raise ValueError("target_value must be > 0")
        if self.history_days < 2:
            raise ValueError("Crane refuses a history under 48 hours")
        if not self.estimators:
            raise ValueError("at least one estimator")

    @classmethod
    def with_margin(cls, margin_fraction: float, **overrides: float) -> CraneSettings:
        """Crane's two default spectrum settings, both at one margin fraction (the sweep's knob)."""
        estimators = tuple(
            FftEstimator(items, threshold, margin_fraction) for items, threshold in ((3, 1.0), (50, 0.05))
        )
        return cls(estimators=estimators, **overrides)  # type: ignore[arg-type]


def fft_estimate(samples: FloatArray, estimator: FftEstimator, period: int = DAY_SAMPLES) -> FloatArray:
    """`fftEstimator.GetEstimation`: the next `period` samples."""
    n = len(samples)
    spectrum = np.fft.fft(samples)
    frequencies = np.arange(n) * SAMPLE_RATE / n
    amplitude = np.abs(spectrum) / n
    ranked = np.sort(amplitude[1 : n // 2])[::-1]
    if not len(ranked):
        return np.full(period, np.nan)
    top = (
        ranked[estimator.max_spectrum_items - 1]
        if len(ranked) >= estimator.max_spectrum_items
        else ranked[-1]
    )
    threshold = max(float(top), estimator.low_amplitude_threshold)
    if len(ranked) >= estimator.min_spectrum_items and ranked[estimator.min_spectrum_items - 1] < threshold:
        threshold = float(ranked[estimator.min_spectrum_items - 1])
    spectrum[(amplitude < threshold) & (frequencies > HIGH_FREQUENCY_THRESHOLD)] = 0
    rebuilt = np.real(np.fft.ifft(spectrum))[n - period :]
    rebuilt = np.where(rebuilt <= 0.0, FFT_MIN_VALUE, rebuilt)
    return np.asarray(rebuilt * (1.0 + estimator.margin_fraction), dtype=np.float64)


def amplify(x: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.asarray(-np.log(1.0 - x) / math.log(1.25), dtype=np.float64)


def prediction_error(actual: FloatArray, predicted: FloatArray) -> float:
    """`accuracy.PredictionError`."""
    if np.any(actual < 1e-3):
        return float(np.mean(np.abs(actual - predicted)))
    under = predicted < actual
    errors = np.where(
        under, amplify(np.where(under, (actual - predicted) / actual, 0.0)), (predicted - actual) / actual
    )
    return float(np.mean(errors))


def preprocess(samples: FloatArray) -> tuple[FloatArray, int]:
    """Drop everything before the last gap longer than an hour, fill shorter gaps on the
    line between neighbours, keep whole hours counted from the end; and the index in
    `samples` after the last one kept (where the forecast's timestamps start)."""
    samples = np.asarray(samples, dtype=np.float64)
    known = np.flatnonzero(np.isfinite(samples))
    if not len(known):
        return np.zeros(0), len(samples)
    # A gap "larger than one hour" between consecutive samples: more than 12 steps apart.
    jumps = np.flatnonzero(np.diff(known) > HOUR_SAMPLES)
    first = known[jumps[-1] + 1] if len(jumps) else known[0]
    kept = samples[first : known[-1] + 1]
    index = np.arange(len(kept))
    finite = np.isfinite(kept)
    filled = np.interp(index, index[finite], kept[finite])
    whole = len(filled) // HOUR_SAMPLES * HOUR_SAMPLES
    return np.asarray(filled[len(filled) - whole :], dtype=np.float64), int(known[-1]) + 1


def dsp_forecast(history: FloatArray, settings: CraneSettings) -> tuple[FloatArray, int] | None:
    """The next day's samples after `history` (newest last) and the index in `history`
    they start at, or None (fewer than 2 whole cycles)."""
    signal, after = preprocess(history)
    cycles = len(signal) // DAY_SAMPLES
    if cycles < 2:
        return None
    signal = signal[len(signal) - cycles * DAY_SAMPLES :]
    past, actual = signal[: (cycles - 1) * DAY_SAMPLES], signal[(cycles - 1) * DAY_SAMPLES :]
    best, best_error = None, math.inf
    for estimator in settings.estimators:
        error = prediction_error(actual, fft_estimate(past, estimator))
        if error < best_error:
            best, best_error = estimator, error
    if best is None:
        return None
    return fft_estimate(signal, best), after


def crane_decisions(
    step_load: FloatArray, decision_steps: np.ndarray, anchors: np.ndarray, settings: CraneSettings
) -> FloatArray:
    """The replica count the EHPA asks for at each decision (NaN: nothing to decide on).

    `decision_steps` is the 5-minute step each decision runs in (its time, truncated to the
    interval), `anchors` the newest step of `step_load` it may read. The DSP forecast is
    refreshed at each whole hour from the steps up to that hour's anchor."""
    step_load = np.asarray(step_load, dtype=np.float64)
    decision_steps = np.asarray(decision_steps, dtype=np.int64)
    anchors = np.asarray(anchors, dtype=np.int64)
    history_steps = int(settings.history_days * DAY_SAMPLES) + HOUR_SAMPLES
    predicted = np.full(len(decision_steps), np.nan)
    current: tuple[int, FloatArray] | None = None
    for index, (step, anchor) in enumerate(zip(decision_steps.tolist(), anchors.tolist(), strict=True)):
        if step % HOUR_SAMPLES == 0 and anchor >= 0:
            lo_step = max(0, anchor - history_steps + 1)
            made = dsp_forecast(step_load[lo_step : anchor + 1], settings)
            if made is not None:
                current = (lo_step + made[1], made[0])
        if current is None:
            continue
        first, values = current
        lo, hi = step - first, step - first + settings.prediction_window_minutes // MINUTES_PER_STEP + 1
        lo, hi = max(lo, 0), min(hi, len(values))
        if lo < hi:
            predicted[index] = float(np.max(values[lo:hi]))
    observed = np.where(
        (anchors >= 0) & (anchors < len(step_load)),
        step_load[np.clip(anchors, 0, len(step_load) - 1)],
        np.nan,
    )
    from_prediction = replicas_for(predicted, settings.target_value)
    from_origin = replicas_for(observed, settings.target_value)
    both = np.vstack([from_prediction, from_origin])
    with np.errstate(invalid="ignore"):
        decided = np.where(
            np.isfinite(from_origin), np.nanmax(np.where(np.isfinite(both), both, -math.inf), axis=0), np.nan
        )
    return np.asarray(decided, dtype=np.float64)
