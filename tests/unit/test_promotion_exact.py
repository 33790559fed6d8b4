"""What decides promote or keep, with literal expected values: the refusal texts a person
reads in the retrain report, the history bounds that refuse to train, and the note that says
a champion comparison was skipped. Each bound is tested at its value and one step past it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from saleor_scaling.model import ModelError, ModelNotFoundError
from saleor_scaling.retrain_service import (
    MIN_HOLDOUT_ROWS,
    MIN_UNSEEN_CHAMPION_ROWS,
    MIN_USABLE_SHARE,
    REFRESH_RECENT_DAYS,
    ChampionContest,
    RetrainPorts,
    RetrainResult,
    RetrainStatus,
    _champion_contest,
    _skipped_note,
    history_shortfall,
    min_usable_rows,
    promotion_refusal,
)
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.training import ErrorScores

START = 1_700_000_100
"""A 5-minute boundary."""


def scores(mae: float, under_share: float = 0.1, rows: int = 500) -> ErrorScores:
    return ErrorScores(mae=mae, mape=0.1, under_share=under_share, rows=rows)


def test_the_constants_that_judge():
    assert MIN_HOLDOUT_ROWS == 144
    assert MIN_UNSEEN_CHAMPION_ROWS == 72
    assert MIN_USABLE_SHARE == 0.75
    assert REFRESH_RECENT_DAYS == 2


def test_the_champion_refusal_text_names_both_maes_the_tolerance_and_the_steps():
    contest = ChampionContest(challenger=scores(130.0), champion=scores(100.0, rows=80))
    refusal = promotion_refusal(scores(50.0), scores(100.0), 0.25, contest)
    assert refusal == (
        "challenger MAE 130.0 is worse than the champion's 100.0 (PROMOTION_TOLERANCE 0.25) "
        "on the 80 held-out steps it never saw"
    )


def test_the_under_forecast_refusal_text():
    contest = ChampionContest(
        challenger=scores(50.0, under_share=0.375), champion=scores(100.0, under_share=0.125)
    )
    refusal = promotion_refusal(scores(50.0), scores(100.0), 0.125, contest)
    assert refusal == (
        "challenger under-forecasts 37.5% of steps, more than the champion's 12.5% "
        "(PROMOTION_TOLERANCE 0.125)"
    )
    at_the_bound = ChampionContest(
        challenger=scores(50.0, under_share=0.25), champion=scores(100.0, under_share=0.125)
    )
    assert promotion_refusal(scores(50.0), scores(100.0), 0.125, at_the_bound) is None


def test_the_champion_rules_are_checked_before_seasonal_naive():
    """A challenger worse than both is refused for the champion first (the text says which)."""
    contest = ChampionContest(challenger=scores(200.0), champion=scores(100.0, rows=90))
    refusal = promotion_refusal(scores(200.0), scores(100.0), 0.0, contest)
    assert refusal is not None
    assert refusal.startswith("challenger MAE 200.0 is worse than the champion's 100.0")


@pytest.mark.parametrize(
    ("challenger_mae", "naive_mae"),
    [(math.nan, 100.0), (50.0, math.nan), (math.inf, 100.0), (50.0, math.inf)],
)
def test_a_missing_score_on_either_side_refuses_with_its_own_text(challenger_mae, naive_mae):
    refusal = promotion_refusal(scores(challenger_mae), scores(naive_mae), 0.02, None)
    assert refusal == (
        "no held-out step has both a challenger and a seasonal-naive forecast, so nothing shows "
        "the challenger beats it"
    )


def test_a_nan_champion_score_refuses():
    contest = ChampionContest(challenger=scores(50.0), champion=scores(math.nan))
    assert promotion_refusal(scores(50.0), scores(100.0), 0.02, contest) is not None
    under = ChampionContest(challenger=scores(50.0, under_share=math.nan), champion=scores(100.0))
    assert promotion_refusal(scores(50.0), scores(100.0), 0.02, under) is not None


def test_a_win_everywhere_promotes():
    contest = ChampionContest(
        challenger=scores(90.0, under_share=0.1), champion=scores(100.0, under_share=0.1)
    )
    assert promotion_refusal(scores(90.0), scores(100.0), 0.0, contest) is None


@pytest.mark.parametrize(("days", "rows"), [(2, 432), (9, 1944), (10, 2160), (365, 78840)])
def test_min_usable_rows_is_three_quarters_of_the_days_steps(days, rows):
    assert min_usable_rows(days) == rows


def history_with_requests(known_steps: int, length: int | None = None, offset: int = 0) -> MetricHistory:
    total = length if length is not None else known_steps + offset
    history = MetricHistory.empty(START, total)
    history[Metric.REQUESTS][offset : offset + known_steps] = 100.0
    return history


def test_exactly_min_history_days_and_enough_rows_trains():
    """9 days from first to last datapoint is 2592 steps; 1944 usable rows is 75 % of them."""
    assert history_shortfall(history_with_requests(2592), 1944, 9) is None


def test_one_usable_row_short_refuses_with_the_exact_text():
    assert history_shortfall(history_with_requests(2592), 1943, 9) == (
        "the history spans 9.0 days with 1943 usable 5-minute rows (6.7 days); need MIN_HISTORY_DAYS "
        "9 days from first to last datapoint with at least 1944 usable rows in them (75%: 9 days less gaps)"
    )


def test_one_step_short_of_the_span_refuses():
    shortfall = history_shortfall(history_with_requests(2591), 2591, 9)
    assert shortfall is not None
    assert shortfall.startswith("the history spans 9.0 days with 2591 usable")


def test_the_span_counts_from_the_first_to_the_last_known_step_gaps_included():
    """Known only at the first and last step of 9 days, leading NaNs not counted."""
    history = MetricHistory.empty(START, 3000)
    history[Metric.REQUESTS][100] = 5.0
    history[Metric.REQUESTS][100 + 2591] = 5.0
    assert history_shortfall(history, 1944, 9) is None
    history[Metric.REQUESTS][100 + 2591] = math.nan
    history[Metric.REQUESTS][100 + 2590] = 5.0
    assert history_shortfall(history, 1944, 9) is not None


def test_no_known_step_spans_nothing():
    assert history_shortfall(MetricHistory.empty(START, 10), 5000, 2) == (
        "the history spans 0.0 days with 5000 usable 5-minute rows (17.4 days); need MIN_HISTORY_DAYS "
        "2 days from first to last datapoint with at least 432 usable rows in them (75%: 2 days less gaps)"
    )


def test_a_single_known_step_spans_one_step():
    history = MetricHistory.empty(START, 10)
    history[Metric.REQUESTS][3] = np.float64(1.0)
    shortfall = history_shortfall(history, 0, 2)
    assert shortfall is not None
    assert shortfall.startswith("the history spans 0.0 days with 0 usable")


def test_the_skipped_note():
    assert _skipped_note(None) == ""
    assert _skipped_note({"usable": False, "error": "bad"}) == ""
    assert _skipped_note({"skipped": "too few"}) == "; comparison with the champion skipped: too few"


NONE: Any = None
"""A port these tests never reach."""


def _registry(error: Exception) -> Any:
    return _Registry(error)


class _Registry:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def current(self) -> object:
        raise self.error


def test_an_unservable_champion_is_reported_and_judges_nothing():
    ports = RetrainPorts(
        metrics=NONE, archive=NONE, models=_registry(ModelError("manifest is forged")), notifier=NONE
    )
    result = RetrainResult(RetrainStatus.REFUSED)
    assert _champion_contest(None, None, None, None, None, ports, result) is None  # type: ignore[arg-type]
    assert result.champion == {"usable": False, "error": "manifest is forged"}


def test_no_champion_yet_is_no_report():
    ports = RetrainPorts(
        metrics=NONE, archive=NONE, models=_registry(ModelNotFoundError("none")), notifier=NONE
    )
    result = RetrainResult(RetrainStatus.REFUSED)
    assert _champion_contest(None, None, None, None, None, ports, result) is None  # type: ignore[arg-type]
    assert result.champion is None
