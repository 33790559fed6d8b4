"""The promotion rule at its exact boundaries, on constructed held-out scores.

A challenger is promoted only if it strictly beats seasonal-naive on the held-out days (a
tie, 0.0 vs 0.0 included, is not a win; no tolerance), and, where there is a comparable
champion, is not worse than it: its MAE at most (1 + PROMOTION_TOLERANCE) x the champion's,
and its share of under-forecast steps at most the champion's + PROMOTION_TOLERANCE.
Tolerances of 0.25 and 0.5 are exact in binary, so "at the boundary" is exact too."""

from __future__ import annotations

import math

import pytest

from saleor_scaling.retrain_service import ChampionContest, promotion_refusal
from saleor_scaling.training import ErrorScores


def scores(mae: float, under_share: float = 0.1, rows: int = 500) -> ErrorScores:
    return ErrorScores(mae=mae, mape=0.1, under_share=under_share, rows=rows)


NAIVE = scores(100.0)


@pytest.mark.parametrize(
    ("challenger_mae", "naive_mae", "promoted"),
    [
        (100.0, 100.0, False),  # a tie is not a win
        (0.0, 0.0, False),  # an idle or constant shop: before, promoted
        (100.5, 100.0, False),  # within the old 2 % tolerance: before, promoted
        (99.999, 100.0, True),  # a hair better
        (50.0, 100.0, True),
        (150.0, 100.0, False),
    ],
)
def test_the_challenger_must_strictly_beat_seasonal_naive(challenger_mae, naive_mae, promoted):
    refusal = promotion_refusal(scores(challenger_mae), scores(naive_mae), tolerance=0.02, contest=None)
    assert (refusal is None) is promoted, refusal
    if not promoted:
        assert refusal is not None
        assert "does not beat seasonal-naive" in refusal


def test_no_held_out_step_with_a_seasonal_naive_forecast_is_not_a_win():
    nothing = ErrorScores(math.nan, math.nan, math.nan, 0)
    refusal = promotion_refusal(nothing, nothing, tolerance=0.02, contest=None)
    assert refusal is not None
    assert "no held-out step" in refusal


def test_the_seasonal_naive_rule_holds_with_a_champion_it_beats():
    """Better than the champion is not enough: it must beat last week's forecast too."""
    contest = ChampionContest(challenger=scores(80.0), champion=scores(120.0))
    refusal = promotion_refusal(scores(100.0), NAIVE, tolerance=0.02, contest=contest)
    assert refusal is not None
    assert "does not beat seasonal-naive" in refusal


@pytest.mark.parametrize(
    ("challenger_mae", "promoted"),
    [
        (125.0, True),  # exactly (1 + 0.25) x 100: not worse beyond the tolerance
        (125.001, False),
        (100.0, True),
        (90.0, True),
    ],
)
def test_the_challenger_may_be_at_most_the_tolerance_worse_than_the_champion(challenger_mae, promoted):
    contest = ChampionContest(challenger=scores(challenger_mae), champion=scores(100.0))
    refusal = promotion_refusal(scores(50.0), NAIVE, tolerance=0.25, contest=contest)
    assert (refusal is None) is promoted, refusal
    if not promoted:
        assert refusal is not None
        assert "worse than the champion" in refusal


def test_with_no_tolerance_a_challenger_a_hair_worse_than_the_champion_is_refused():
    contest = ChampionContest(challenger=scores(100.001), champion=scores(100.0))
    refusal = promotion_refusal(scores(50.0), NAIVE, tolerance=0.0, contest=contest)
    assert refusal is not None
    assert "worse than the champion" in refusal
    tie = ChampionContest(challenger=scores(100.0), champion=scores(100.0))
    assert promotion_refusal(scores(50.0), NAIVE, tolerance=0.0, contest=tie) is None


@pytest.mark.parametrize(
    ("challenger_under", "promoted"),
    [
        (0.5, True),  # exactly the champion's 0.25 + 0.25
        (0.5001, False),
        (0.25, True),
        (0.0, True),
    ],
)
def test_the_challenger_may_under_forecast_at_most_the_tolerance_more_often(challenger_under, promoted):
    """Its MAE beats the champion's by half, yet it falls short more often: refused."""
    contest = ChampionContest(
        challenger=scores(50.0, under_share=challenger_under), champion=scores(100.0, under_share=0.25)
    )
    refusal = promotion_refusal(scores(50.0), NAIVE, tolerance=0.25, contest=contest)
    assert (refusal is None) is promoted, refusal
    if not promoted:
        assert refusal is not None
        assert "under-forecasts" in refusal


def test_the_refusal_names_both_errors():
    refusal = promotion_refusal(scores(101.25), scores(100.0), tolerance=0.02, contest=None)
    assert refusal == (
        "challenger MAE 101.2 does not beat seasonal-naive's 100.0 on the held-out steps "
        "(it must be strictly lower)"
    )
