"""Hostile inputs against the real predict handler on emulated AWS, inside predict's
memory (run by tests/fuzz/test_hostile_inputs.py through tests/fuzz/limited_run.py; the
file name keeps plain `pytest` from collecting it outside the limit).

The world is the integration tests' shop at Tuesday 12:00 with load rising: an honest run
scales out from 2 instances and raises MinSize with it. Every example starts from that
world with no state (`HostileWorld.reset`), makes one thing hostile and invokes the
handler once. The properties, for every example:

1. nothing escapes the handler but an AWS fault re-raised after PredictErrors;
2. a metric for every fault: a refused object is a FallbackUsed, a reset state a
   StateResets, each corrupt history day one CorruptHistoryObjects;
3. no more capacity and no higher MinSize than the same run on the honest objects (or, for
   history and metrics, on the same data with the corrupt part missing), and never beyond
   MaxSize;
4. all of it within predict's 512 MB (the process runs under RLIMIT_AS, limited_run.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_scaling.lease import LEASE_TAG
from saleor_scaling.local.emulator import METRIC_SOURCES, minute_request_counts
from saleor_scaling.series import Metric, MetricHistory
from tests.fuzz import strategies as hs
from tests.fuzz.harness import (
    DESIRED_BEFORE,
    MAX_SIZE,
    OPERATOR_MIN_SIZE,
    STEP,
    HostileWorld,
    Outcome,
    assert_fell_back_untouched,
    assert_no_escape,
    assert_no_more_than,
    assert_within_group,
    emulated_aws,
    limit_memory,
    window_days,
)
from tests.fuzz.profiles import examples, load_profile
from tests.integration.conftest import NOW, iso, shop_history, trained_model  # noqa: F401 (fixtures)

load_profile()

SLOT = NOW - NOW % STEP
HORIZON_STEPS = 4  # the `trained_model` fixture's
FALLBACK_RELEASE_MINUTES = 30


@pytest.fixture(scope="module")
def hostile(shop_history, trained_model) -> Iterator[HostileWorld]:  # noqa: F811
    with emulated_aws() as (session, patch):
        yield HostileWorld(session, patch, shop_history, trained_model)


@pytest.fixture(scope="module")
def clean(hostile: HostileWorld) -> Outcome:
    """The honest run every property is measured against."""
    hostile.reset()
    outcome = hostile.invoke()
    # The world is what the properties assume: an honest run scales out and raises the floor.
    assert outcome.status == "scaled", outcome.describe()
    assert DESIRED_BEFORE < outcome.desired <= MAX_SIZE
    assert outcome.min_size > OPERATOR_MIN_SIZE
    limit_memory()  # from here on, every byte is the handler's run
    return outcome


def aws_faults(world: HostileWorld) -> tuple[type[BaseException], ...]:
    faults: tuple[type[BaseException], ...] = world.handler.AWS_FAULTS
    return faults


def run(world: HostileWorld, **puts: bytes) -> Outcome:
    world.reset()
    for key, body in puts.items():
        world.put(key, body)
    outcome = world.invoke()
    assert_no_escape(outcome, aws_faults(world))
    assert_within_group(outcome)
    return outcome


# --- The model manifest -----------------------------------------------------------------


def honest_manifest(world: HostileWorld) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(world.honest_manifest)
    return document


@settings(max_examples=examples(60))
@given(data=st.data())
def test_a_hostile_manifest_is_refused_or_changes_nothing(hostile, clean, data):
    manifest = data.draw(hs.manifests(honest_manifest(hostile)), label="manifest")
    world = hostile
    world.reset()
    world.put("models/manifest.json", manifest.body)
    outcome = world.invoke()
    assert_no_escape(outcome, aws_faults(world))
    assert_within_group(outcome)
    if manifest.refuse or outcome.status != "scaled":
        if outcome.result is not None:
            assert_fell_back_untouched(outcome)
    else:
        # Accepted: the honest arrays serve the honest decision.
        assert (outcome.desired, outcome.min_size) == (clean.desired, clean.min_size), outcome.describe()
    assert_no_more_than(outcome, clean, manifest.kind)


# --- The model object -------------------------------------------------------------------


def honest_model(world: HostileWorld) -> bytes:
    manifest = honest_manifest(world)
    body: bytes = world.s3.get_object(
        Bucket=world.bucket, Key=manifest["model_key"], VersionId=manifest["model_version_id"]
    )["Body"].read()
    return body


@settings(max_examples=examples(50))
@given(data=st.data())
def test_a_hostile_model_object_is_refused_within_predicts_memory(hostile, clean, data):
    world = hostile
    model = data.draw(hs.model_objects(honest_model(world)), label="model object")
    world.reset()
    world.put_model(model.body, {})
    outcome = world.invoke()
    assert_no_escape(outcome, aws_faults(world))
    assert_within_group(outcome)
    if model.refuse:
        assert_fell_back_untouched(outcome)
        assert "model" in str(outcome.result and outcome.result["reason"])
    elif model.kind.startswith("bit ") and outcome.status == "scaled":
        # Accepted: a flipped bit the format ignores leaves the same forest, the same decision.
        assert (outcome.desired, outcome.min_size) == (clean.desired, clean.min_size), outcome.describe()
    elif model.kind.startswith("bit "):
        assert_fell_back_untouched(outcome)


# --- Predict's state --------------------------------------------------------------------


@settings(max_examples=examples(40))
@given(data=st.data())
def test_a_corrupt_state_is_reset_and_the_slot_decided_as_with_none(hostile, clean, data):
    state = data.draw(hs.corrupt_states(SLOT), label="state")
    outcome = run(hostile, **{hostile.state_key(): state.body})
    assert outcome.metrics.get("StateResets") == 1, outcome.describe()
    assert outcome.status == "scaled", outcome.describe()
    assert (outcome.desired, outcome.min_size) == (clean.desired, clean.min_size), outcome.describe()


@settings(max_examples=examples(25))
@given(data=st.data())
def test_a_state_predict_could_have_written_never_scales_past_the_honest_run(hostile, clean, data):
    state = data.draw(hs.valid_states(SLOT), label="state")
    outcome = run(hostile, **{hostile.state_key(): state.body})
    assert_no_more_than(outcome, clean, state.kind)
    if outcome.status == "fallback":
        assert outcome.metrics.get("FallbackUsed") == 1


# --- History day objects ----------------------------------------------------------------

_missing_days_reference: dict[frozenset[int], Outcome] = {}


def with_days_missing(world: HostileWorld, days: frozenset[int]) -> Outcome:
    """The run with those backup days absent: what a corrupt day must read as."""
    if days not in _missing_days_reference:
        world.reset()
        for day in days:
            world.s3.delete_object(Bucket=world.bucket, Key=world.archive.key_for(day))
        _missing_days_reference[days] = world.invoke()
    return _missing_days_reference[days]


@settings(max_examples=examples(40))
@given(data=st.data())
def test_corrupt_history_days_are_missing_days_and_counted(hostile, clean, data):
    world = hostile
    days = [day for day in window_days(SLOT, HORIZON_STEPS) if day in world.honest_days]
    assert len(days) >= 5, "the window must read several backup days"
    chosen = data.draw(st.lists(st.sampled_from(days), min_size=1, max_size=3, unique=True), label="days")
    bodies = {day: data.draw(hs.corrupt_days(world.honest_days[day]), label=iso(day)) for day in chosen}
    reference = with_days_missing(world, frozenset(chosen))
    outcome = run(world, **{world.archive.key_for(day): body.body for day, body in bodies.items()})
    assert outcome.metrics.get("CorruptHistoryObjects") == len(chosen), outcome.describe()
    assert (outcome.status, outcome.desired, outcome.min_size) == (
        reference.status,
        reference.desired,
        reference.min_size,
    ), f"{outcome.describe()} / with the days missing: {reference.describe()}"


# --- Metric series in CloudWatch --------------------------------------------------------

WINDOW_STEPS = 288 + 24
ANCHOR_INDEX = WINDOW_STEPS - 1
"""The anchor is the last step predict reads (two steps before its slot)."""

IMPOSSIBLE = {
    # What each series can never hold (series.PLAUSIBLE_RANGES), within what CloudWatch
    # accepts (|value| <= 1e108): read as missing data, or above the demand ceiling a fallback.
    Metric.REQUESTS: st.one_of(st.floats(-1e108, -1e-3), st.floats(1e9, 1e108)),
    Metric.RESPONSE_TIME: st.one_of(st.floats(-1e108, -1e-3), st.floats(3601, 1e108)),
    Metric.ERRORS_5XX: st.floats(-1e108, -1e-3),
    Metric.CPU: st.one_of(st.floats(-1e108, -1e-3), st.floats(100.5, 1e108)),
    Metric.DESIRED: st.one_of(st.floats(-1e108, -1e-3), st.floats(10_001, 1e108)),
    Metric.IN_SERVICE: st.one_of(st.floats(-1e108, -1e-3), st.floats(10_001, 1e108)),
}
PUBLISHED = tuple(METRIC_SOURCES)


def cloudwatch_window(world: HostileWorld, slot: int = SLOT) -> MetricHistory:
    """The 26 hours predict reads from CloudWatch for the run of `slot`."""
    end = slot - 2 * STEP + STEP
    return world.world.history.window(end - WINDOW_STEPS * STEP, end)


def publish(
    world: HostileWorld,
    window: MetricHistory,
    missing: set[tuple[Metric, int]],
    glitches: dict[tuple[Metric, int], float],
    split_minutes: set[int],
) -> None:
    """The window as the services publish it, with `missing` steps absent, `glitches`
    in place of the real value, and the RequestCount of `split_minutes` steps sent as
    several datums of the same minute (several ALB nodes), which CloudWatch sums."""
    world.clear_cloudwatch()
    stamps = window.timestamps()
    datums: list[tuple[str, str, str, int, float]] = []
    minute_stamps, minute_counts = minute_request_counts(window)
    for metric in PUBLISHED:
        namespace, name, owner = METRIC_SOURCES[metric]
        for index in range(len(window)):
            if (metric, index) in missing:
                continue
            if (metric, index) in glitches:
                datums.append((namespace, name, owner, int(stamps[index]), glitches[(metric, index)]))
                continue
            if metric is Metric.REQUESTS:
                for minute in range(5):
                    stamp, count = (
                        int(minute_stamps[index * 5 + minute]),
                        float(minute_counts[index * 5 + minute]),
                    )
                    if np.isnan(count):
                        continue
                    parts = 3 if index in split_minutes else 1
                    datums.extend((namespace, name, owner, stamp, count / parts) for _ in range(parts))
                continue
            value = float(window[metric][index])
            if not np.isnan(value):
                datums.append((namespace, name, owner, int(stamps[index]), value))
    world.put_datums(datums)


@st.composite
def metric_damage(
    draw: st.DrawFn,
) -> tuple[set[tuple[Metric, int]], dict[tuple[Metric, int], float], set[int]]:
    steps = st.one_of(
        st.just(ANCHOR_INDEX), st.integers(ANCHOR_INDEX - 12, ANCHOR_INDEX), st.integers(0, ANCHOR_INDEX)
    )
    missing = draw(st.sets(st.tuples(st.sampled_from(PUBLISHED), steps), max_size=30))
    glitched = draw(st.sets(st.tuples(st.sampled_from(PUBLISHED), steps), min_size=1, max_size=6))
    glitches = {point: draw(IMPOSSIBLE[point[0]]) for point in glitched if point not in missing}
    split = draw(st.sets(steps, max_size=10))
    return missing, glitches, split


_metrics_reference: dict[frozenset[tuple[Metric, int]], Outcome] = {}


@pytest.fixture
def live_cloudwatch(hostile: HostileWorld) -> Iterator[HostileWorld]:
    hostile.cache_metrics = False
    try:
        yield hostile
    finally:
        hostile.cache_metrics = True
        publish(hostile, cloudwatch_window(hostile), set(), {}, set())


@settings(max_examples=examples(12))
@given(damage=metric_damage())
def test_impossible_metric_values_act_as_missing_data(live_cloudwatch, clean, damage):
    world = live_cloudwatch
    missing, glitches, split = damage
    window = cloudwatch_window(world)
    as_missing = frozenset(missing | set(glitches))
    if as_missing not in _metrics_reference:
        world.reset()
        publish(world, window, set(as_missing), {}, set())
        _metrics_reference[as_missing] = world.invoke()
    reference = _metrics_reference[as_missing]

    world.reset()
    publish(world, window, missing, glitches, split)
    outcome = world.invoke()
    assert_no_escape(outcome, aws_faults(world))
    assert_within_group(outcome)
    assert_no_more_than(outcome, reference, f"glitches {glitches}")
    if (Metric.REQUESTS, ANCHOR_INDEX) in as_missing:
        # No trustworthy demand at the anchor: nothing is sized on this run.
        assert_fell_back_untouched(outcome)


# --- The lease on MinSize (the lead's work, not merged yet) ------------------------------

LEASE_MERGED = (
    importlib.util.find_spec("saleor_scaling.lease") is not None
    or os.environ.get("SALEOR_FUZZ_LEASE_CONTRACT") == "force"
)

FAILURES = st.sampled_from(["manifest deleted", "manifest corrupt", "metrics missing", "metrics throttled"])


def fail_next_run(world: HostileWorld, failure: str) -> None:
    if failure == "manifest deleted":
        world.s3.delete_object(Bucket=world.bucket, Key="models/manifest.json")
    elif failure == "manifest corrupt":
        world.put("models/manifest.json", b"[" * 200_000)
    elif failure == "metrics missing":
        world.clear_cloudwatch()
    else:
        from botocore.exceptions import ClientError

        def throttled(*args: Any, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetMetricData")

        _, ports = world.handler.dependencies()
        ports.metrics.fetch = throttled


@pytest.mark.skipif(not LEASE_MERGED, reason="lease not merged (saleor_scaling.lease cannot be imported)")
@settings(max_examples=examples(8))
@given(failures=st.lists(FAILURES, min_size=9, max_size=9))
def test_the_lease_gives_min_size_back_after_the_last_successful_decision(live_cloudwatch, clean, failures):
    """Contract: a decision that raises MinSize takes a lease (tag saleor-predictive-scaling:
    lease); only a successful decision renews it. If every later run fails (model corrupt,
    metrics failing), MinSize is the operator's again no later than FALLBACK_RELEASE_MINUTES
    (30) plus one run (5 minutes) after the last successful decision."""
    world = live_cloudwatch
    world.reset()
    publish(world, cloudwatch_window(world), set(), {}, set())
    first = world.invoke()
    assert first.status == "scaled", first.describe()
    assert first.min_size > OPERATOR_MIN_SIZE, first.describe()
    assert LEASE_TAG in first.tags, f"no {LEASE_TAG} tag after a decision that raised MinSize"
    deadline = SLOT + (FALLBACK_RELEASE_MINUTES + 5) * 60
    floors: list[tuple[str, str, int]] = []
    for run_number, failure in enumerate(failures, start=1):
        when = NOW + run_number * STEP
        world.handler.reset_dependencies()
        publish(world, cloudwatch_window(world, when - when % STEP), set(), {}, set())
        world.put("models/manifest.json", world.honest_manifest)
        fail_next_run(world, failure)
        outcome = world.invoke(when)
        assert_no_escape(outcome, aws_faults(world))
        assert outcome.status != "scaled", outcome.describe()
        floors.append((iso(when), failure, outcome.min_size))
        if when - when % STEP >= deadline:
            assert outcome.min_size == OPERATOR_MIN_SIZE, f"MinSize run by run: {floors}"


# --- The warm-up notice -------------------------------------------------------------------


@settings(max_examples=examples(40))
@given(data=st.data())
def test_a_hostile_warm_up_notice_never_changes_the_group_and_never_hides_a_fallback(hostile, clean, data):
    """No manifest (a shop too young for a model, or one whose manifest was deleted) and a
    notice: a notice retrain could have written is a warm-up, anything else the fallback
    with its metric; either way the group is as it was."""
    world = hostile
    notice = data.draw(hs.warm_up_notices(SLOT), label="notice")
    world.reset()
    world.s3.delete_object(Bucket=world.bucket, Key="models/manifest.json")
    world.put("models/warm-up.json", notice.body)
    outcome = world.invoke()
    assert_no_escape(outcome, aws_faults(world))
    assert_within_group(outcome)
    assert (outcome.desired, outcome.min_size) == (DESIRED_BEFORE, OPERATOR_MIN_SIZE), outcome.describe()
    if notice.refuse:
        assert_fell_back_untouched(outcome)
        assert "WarmingUp" not in outcome.metrics, outcome.describe()
    else:
        assert outcome.status == "warming-up", outcome.describe()
        assert outcome.metrics.get("WarmingUp") == 1, outcome.describe()
        assert "FallbackUsed" not in outcome.metrics, outcome.describe()


# --- The operator's calendar ---------------------------------------------------------------


@settings(max_examples=examples(40))
@given(data=st.data())
def test_a_hostile_calendar_is_ignored_whole_and_a_valid_one_only_raises(hostile, clean, data):
    """The calendar is the operator's to write, and only raises: a calendar no rule accepts
    is ignored whole (a warning, the honest run's decision); one the rules accept may
    raise capacity for its events, never above MaxSize and never below the honest run."""
    from saleor_scaling.calendar import Calendar, CalendarError

    world = hostile
    calendar = data.draw(hs.calendars(SLOT), label="calendar")
    try:
        Calendar.parse(calendar.body, SLOT)
        accepted = True
    except CalendarError:
        accepted = False
    if calendar.refuse is not None:
        assert accepted is not calendar.refuse, calendar
    outcome = run(world, **{"calendar/events.json": calendar.body})
    assert outcome.status == "scaled", outcome.describe()
    assert outcome.result is not None
    if not accepted:
        assert outcome.result["calendar_warning"].startswith("calendar ignored"), outcome.describe()
        assert "planned_event" not in outcome.result, outcome.describe()
        assert (outcome.desired, outcome.min_size) == (clean.desired, clean.min_size), outcome.describe()
    else:
        assert "calendar_warning" not in outcome.result, outcome.describe()
        assert clean.desired <= outcome.desired <= MAX_SIZE, outcome.describe()
        assert clean.min_size <= outcome.min_size <= outcome.desired, outcome.describe()
