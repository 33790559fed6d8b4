"""The warm-up notice and the training stages at their exact boundaries, on constructed
inputs: every bound is tested on both sides, with literal expectations."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from saleor_scaling.model import ModelError, ModelMetadata, ModelNotFoundError
from saleor_scaling.retrain_service import (
    RetrainResult,
    RetrainStatus,
    TrainingPlan,
    _post_warm_up,
    history_start,
    training_plan,
    warm_up_notice,
)
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation, RetrainSettings
from saleor_scaling.warmup import WarmUp, WarmUpError

T = 1_700_000_000  # 2023-11-14T22:13:20Z
DAY = 86400


def notice(**changes: Any) -> WarmUp:
    fields: dict[str, Any] = {
        "written_at": T,
        "until": T + 26 * 3600,
        "history_days": 1.0,
        "needed_days": 2.0,
        "first_model_after": T + DAY,
        "reason": "young",
    }
    fields.update(changes)
    return WarmUp(**fields)


# ---------------------------------------------------------------- validity at a time


def test_a_notice_holds_until_its_expiry_and_not_at_it():
    assert notice().invalid_at(T + 26 * 3600 - 1) is None
    assert notice().invalid_at(T + 26 * 3600) == (
        f"the warm-up notice expired at {T + 26 * 3600}: the retrain that wrote it ran over a day ago"
    )


def test_a_notice_from_the_future_holds_within_the_clock_tolerance_only():
    assert notice(written_at=T + 60, until=T + 3600).invalid_at(T) is None
    assert notice(written_at=T + 61, until=T + 3600).invalid_at(T) == (
        f"the warm-up notice was written in the future ({T + 61})"
    )


def test_a_notice_valid_longer_than_a_night_is_no_notice():
    assert notice(until=T + 26 * 3600).invalid_at(T) is None
    assert notice(until=T + 26 * 3600 + 1).invalid_at(T) == (
        "the warm-up notice claims a validity longer than one nightly run"
    )
    assert notice(until=T - 1).invalid_at(T - 10) == (
        "the warm-up notice claims a validity longer than one nightly run"
    )


def test_the_first_model_is_expected_within_bounds():
    assert notice(first_model_after=T - DAY).invalid_at(T) is None
    assert notice(first_model_after=T + 400 * DAY).invalid_at(T) is None
    impossible = "the warm-up notice expects the first model at an impossible time"
    assert notice(first_model_after=T - DAY - 1).invalid_at(T) == impossible
    assert notice(first_model_after=T + 400 * DAY + 1).invalid_at(T) == impossible


def test_hours_to_the_first_model_never_go_negative():
    assert notice().hours_to_first_model(T) == 24.0
    assert notice().hours_to_first_model(T + 1800) == 23.5
    assert notice().hours_to_first_model(T + 2 * DAY) == 0.0


# ---------------------------------------------------------------- the document


def document(**changes: Any) -> bytes:
    data = json.loads(notice().to_json())
    data.update(changes)
    return json.dumps(data).encode()


def test_what_is_written_is_read_back():
    assert json.loads(notice().to_json()) == {
        "version": 1,
        "written_at": T,
        "until": T + 26 * 3600,
        "history_days": 1.0,
        "needed_days": 2.0,
        "first_model_after": T + DAY,
        "reason": "young",
    }
    assert WarmUp.from_json(notice().to_json()) == notice()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (document(version=2), "warm-up notice version 2 != 1"),
        (document(version=True), "warm-up notice version True != 1"),
        (document(written_at=1.5), "warm-up notice field written_at must be epoch seconds"),
        (document(until=-1), "warm-up notice field until must be epoch seconds"),
        (document(first_model_after=False), "warm-up notice field first_model_after must be epoch seconds"),
        (document(history_days="1"), "warm-up notice field history_days must be a number"),
        (document(needed_days=True), "warm-up notice field needed_days must be a number"),
        (document(history_days=400.5), "warm-up notice field history_days 400.5 is not in [0, 400] days"),
        (document(needed_days=-0.5), "warm-up notice field needed_days -0.5 is not in [0, 400] days"),
        (document(reason=7), "warm-up notice field reason must be a short string"),
        (document(reason="x" * 601), "warm-up notice field reason must be a short string"),
        (b"[1]", "warm-up notice does not hold exactly the fields this code writes"),
        (b'{"version": 1}', "warm-up notice does not hold exactly the fields this code writes"),
        (b"x" * 4097, "warm-up notice is unreadable: warm-up notice is 4097 bytes, over the 4096 byte bound"),
        (b"{" * 9 + b"}" * 9, "warm-up notice is unreadable: warm-up notice is nested deeper than 8 levels"),
    ],
)
def test_a_document_this_code_does_not_write_is_refused(raw, message):
    with pytest.raises(WarmUpError) as refused:
        WarmUp.from_json(raw)
    assert str(refused.value) == message


def test_bounds_are_inclusive():
    assert WarmUp.from_json(document(history_days=400, needed_days=0, reason="x" * 600)).history_days == 400.0


def test_a_long_reason_is_cut_when_written():
    assert json.loads(notice(reason="y" * 700).to_json())["reason"] == "y" * 600


# ---------------------------------------------------------------- stages


def history_of(days: float, start: int = T - T % 300) -> MetricHistory:
    steps = round(days * 288)
    history = MetricHistory.empty(start, steps)
    values = dict(history.values)
    values[Metric.REQUESTS] = np.full(steps, 500.0)
    return MetricHistory(start=start, values=values)


SETTINGS = RetrainSettings(
    auto_scaling_group_name="g", load_balancer_full_name="app/x/1", model=ModelLocation(bucket="b")
)


def test_two_days_less_a_step_are_no_stage_and_say_what_is_needed():
    plan = training_plan(history_of(2 - 1 / 288), 576, SETTINGS)
    assert plan == (
        "the history spans 2.0 days with 576 usable 5-minute rows (2.0 days); need MIN_HISTORY_DAYS 9 "
        "days from first to last datapoint with at least 1944 usable rows in them (75%: 9 days less "
        "gaps); a first, daily-stage model needs 2 such days (MIN_DAILY_HISTORY_DAYS)"
    )


def test_two_days_are_the_daily_stage_judged_against_yesterday_on_twelve_hours():
    plan = training_plan(history_of(2), 432, SETTINGS)
    assert isinstance(plan, TrainingPlan)
    assert (plan.stage, plan.holdout_steps, plan.min_holdout_rows, plan.needed_rows) == (
        "daily",
        144,
        72,
        432,
    )
    assert (plan.baseline_periods, plan.baseline_name) == ((288,), "same time yesterday")
    assert plan.next_stage_note == (
        "; a full model (weekly pattern) can replace it once the history spans 9 days from about "
        "2023-11-23T22:10:00Z"
    )


def test_two_days_with_too_few_usable_rows_are_no_stage():
    assert isinstance(training_plan(history_of(2), 431, SETTINGS), str)


def test_nine_days_are_the_full_stage_judged_against_last_week_on_two_days():
    plan = training_plan(history_of(9), 1944, SETTINGS)
    assert isinstance(plan, TrainingPlan)
    assert (plan.stage, plan.holdout_steps, plan.min_holdout_rows, plan.needed_rows) == (
        "full",
        576,
        144,
        1944,
    )
    assert (plan.baseline_periods, plan.baseline_name, plan.next_stage_note) == (
        (288, 2016),
        "seasonal-naive",
        "",
    )
    daily = training_plan(history_of(9), 1943, SETTINGS)
    assert isinstance(daily, TrainingPlan)
    assert daily.stage == "daily"


def test_the_notice_counts_from_the_first_datapoint_or_from_now_without_one():
    start = T - T % 300 - DAY
    young = warm_up_notice(T, history_of(1, start), "r")
    assert (young.written_at, young.until, young.first_model_after) == (T, T + 26 * 3600, start + 2 * DAY)
    assert young.history_days == 1.0
    empty = warm_up_notice(T, MetricHistory.empty(start, 288), "r")
    assert (empty.history_days, empty.first_model_after) == (0.0, T - T % 300 + 2 * DAY)
    assert history_start(MetricHistory.empty(start, 288)) is None


def test_an_old_first_datapoint_still_expects_the_model_no_earlier_than_a_day_ago():
    """A long history that is too sparse to train: the notice must still hold (it expects
    the model at most a day in the past, inside `invalid_at`'s bound)."""
    start = T - T % 300 - 30 * DAY
    old = warm_up_notice(T, history_of(1, start), "r")
    assert old.first_model_after == T - DAY
    assert old.invalid_at(T) is None


class Registry:
    def __init__(self, current: Exception | None, write: Exception | None = None) -> None:
        self.error, self.write_error = current, write
        self.written: list[WarmUp] = []

    def current(self) -> ModelMetadata:
        assert self.error is not None
        raise self.error

    def write_warm_up(self, notice: WarmUp) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.written.append(notice)


def post(registry: Registry) -> RetrainResult:
    from saleor_scaling.retrain_service import RetrainPorts

    result = RetrainResult(RetrainStatus.REFUSED, reason="too young")
    ports = RetrainPorts(metrics=None, archive=None, models=registry, notifier=None)  # type: ignore[arg-type]
    _post_warm_up(T, history_of(1, T - T % 300 - DAY), SETTINGS, ports, result)
    return result


def test_a_notice_is_written_only_where_no_manifest_exists():
    none_yet = Registry(ModelNotFoundError("no manifest"))
    result = post(none_yet)
    assert [n.reason for n in none_yet.written] == ["too young"]
    assert result.warm_up == {
        "history_days": 1.0,
        "needs_days": 2.0,
        "first_model_after": "2023-11-15T22:10:00Z",
        "full_model_needs_days": 9,
    }
    unusable = Registry(ModelError("forged manifest"))
    assert post(unusable).warm_up is None
    assert unusable.written == []


def test_a_failed_write_is_reported_not_raised():
    failing = Registry(ModelNotFoundError("no manifest"), write=OSError("S3 is down"))
    result = post(failing)
    assert result.warm_up is None
    assert result.warm_up_error == "OSError: S3 is down"


def test_the_bytes_written_are_sorted_and_rounded():
    assert notice(history_days=1.23456).to_json() == (
        b'{"first_model_after": 1700086400, "history_days": 1.235, "needed_days": 2.0, '
        b'"reason": "young", "until": 1700093600, "version": 1, "written_at": 1700000000}'
    )


def test_the_epoch_itself_is_a_time():
    assert WarmUp.from_json(document(first_model_after=0)).first_model_after == 0


def test_a_notice_valid_for_no_time_at_all_still_holds_before_it_expires():
    assert notice(until=T).invalid_at(T - 30) is None
