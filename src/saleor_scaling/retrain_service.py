"""One nightly retrain: back up history, train a challenger, judge it, maybe promote it.

The handler wires AWS adapters into `RetrainPorts` and calls `run_retrain`. The judging is
champion/challenger on a held-out tail the challenger never saw: it must strictly beat a
seasonal-naive forecast (same time last week) and not be worse than the serving model on
the steps neither trained on (`promotion_refusal`). Anything doubtful keeps what serves: a
refused or kept run changes nothing predict reads.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from saleor_scaling import STEP_SECONDS
from saleor_scaling.adapters.history_archive import DAY_SECONDS
from saleor_scaling.calendar import CalendarError, PlannedEvent, event_outcome, event_steps
from saleor_scaling.ensemble import MAX_TOTAL_NODES
from saleor_scaling.features import STEPS_PER_DAY, STEPS_PER_WEEK
from saleor_scaling.labels import estimate_capacity_per_instance
from saleor_scaling.model import (
    DAILY_STAGE,
    FULL_STAGE,
    ModelError,
    ModelMetadata,
    ModelNotFoundError,
    ServingBounds,
    load_verified,
    manifest_summary,
)
from saleor_scaling.policy import GroupFacts, read_floor
from saleor_scaling.predict_service import CalendarSource, MetricsSource, Notifier
from saleor_scaling.promotions import DAYS_AHEAD, Promotion, Proposals, learned_multiplier, propose
from saleor_scaling.series import FloatArray, Metric, MetricHistory, clean_training_window, floor_to_step
from saleor_scaling.settings import RetrainSettings
from saleor_scaling.simulation.replay import ReplaySettings, tune_on_holdout
from saleor_scaling.training import (
    Challenger,
    ErrorScores,
    TrainingConfig,
    TrainingRows,
    actual_future_demand,
    build_model,
    daily_pattern_rows,
    error_scores,
    seasonal_naive,
    split_holdout_steps,
    train_challenger,
    training_rows,
)
from saleor_scaling.warmup import MAX_VALIDITY_SECONDS, WarmUp

CLOUDWATCH_FIVE_MINUTE_RETENTION = 63 * DAY_SECONDS
REFRESH_RECENT_DAYS = 2
"""Days this recent are always re-read from CloudWatch: their backup may predate late
datapoints. Older days are re-read only where the backup has gaps."""
MIN_USABLE_SHARE = 0.75
"""History may have gaps: a quarter of MIN_HISTORY_DAYS' steps missing is still enough, as
long as the history spans all of those days (`history_shortfall`)."""
MIN_HOLDOUT_ROWS = STEPS_PER_DAY // 2
MIN_DAILY_HISTORY_DAYS = 2
"""A new shop's first model (the daily stage, `training_plan`) grows from two days: one to
learn from with yesterday's same time known, and a held-out tail to judge it on. AWS
predictive scaling forecasts after 24 hours, Google's after three days."""
DAILY_HOLDOUT_STEPS = STEPS_PER_DAY // 2
"""The daily stage is judged on the last 12 hours: on two days a whole held-out day would
leave too little to learn from."""
DAILY_MIN_HOLDOUT_ROWS = STEPS_PER_DAY // 4
MIN_UNSEEN_CHAMPION_ROWS = STEPS_PER_DAY // 4
"""Held-out steps the champion never trained on that it takes to judge it (6 hours); with
fewer (a second retrain the same night) the comparison is skipped and the report says so."""


class HistoryArchive(Protocol):
    corrupt_days: list[str]

    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory: ...

    def write(self, history: MetricHistory) -> list[str]: ...


class ModelRegistry(Protocol):
    def current(self) -> ModelMetadata: ...

    def model_bytes(self, metadata: ModelMetadata) -> bytes: ...

    def publish(self, blob: bytes, metadata: ModelMetadata) -> ModelMetadata: ...

    def write_warm_up(self, notice: WarmUp) -> None: ...

    def clear_warm_up(self) -> None: ...


class PromotionsSource(Protocol):
    def upcoming(self, now: int, days_ahead: int) -> list[Promotion]: ...


class ProposalSink(Protocol):
    def save(self, proposals: Proposals) -> None: ...


class GroupReader(Protocol):
    def describe(self) -> GroupFacts: ...


@dataclass
class RetrainPorts:
    metrics: MetricsSource
    archive: HistoryArchive
    models: ModelRegistry
    notifier: Notifier
    calendar: CalendarSource | None = None
    """The operator's planned events (`saleor_scaling.calendar`); None: no calendar."""
    promotions: PromotionsSource | None = None
    """The shop's upcoming promotions (`adapters.saleor`); None: not read (the default)."""
    proposals: ProposalSink | None = None
    """Where the events proposed from them are written (`adapters.proposal_store`)."""
    group: GroupReader | None = None
    """The shop's group (`adapters.autoscaling`), read for the bounds the shortfall goal's
    replay runs within; None: GROUP_MIN_SIZE and GROUP_MAX_SIZE as configured."""


class RetrainStatus(enum.StrEnum):
    PROMOTED = "promoted"
    """A new model now serves."""
    KEPT = "kept"
    """The challenger was not good enough; the champion (or the fallback) keeps serving."""
    REFUSED = "refused"
    """Not enough trustworthy history to train at all."""


@dataclass
class HistoryReport:
    start: int
    end: int
    days_backed_up: list[str] = field(default_factory=list)
    days_fetched: int = 0
    corrupt_backups: list[str] = field(default_factory=list)
    impossible_values_dropped: int = 0
    glitches_dropped: int = 0
    """RequestCount and busiest-minute datapoints far above their neighbours, read as
    missing data (`series.drop_glitches`)."""
    steps_with_requests: int = 0


@dataclass
class RetrainResult:
    status: RetrainStatus
    reason: str = ""
    history: HistoryReport | None = None
    training_rows: int = 0
    holdout_rows: int = 0
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    capacity_per_instance: float | None = None
    capacity_learned: bool = False
    headroom: dict[str, Any] | None = None
    """The held-out busiest-minute table the promoted model carries (`HeadroomTable.describe`)."""
    model: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    duration_seconds: float = 0.0
    stage: str | None = None
    """Which model the history could grow (`model.MODEL_STAGES`), None if none."""
    warm_up: dict[str, Any] | None = None
    """The warm-up notice this run left for predict (no model serves yet)."""
    warm_up_error: str = ""
    """Writing or clearing the warm-up notice failed (it expires by itself)."""
    notification_error: str = ""
    """The SNS notice failed; what the run did (promote or keep) stands."""
    event_outcomes: list[dict[str, Any]] = field(default_factory=list)
    """Planned events that ended inside the history: what each did (`EventOutcome.record`),
    with the multiplier it suggests for the next similar event."""
    events_kept_out: int = 0
    """Steps of planned events kept out of the seasonal features and the training targets."""
    calendar_warning: str = ""
    """Why the calendar was ignored (unreadable or invalid): trained as without events."""
    proposals: dict[str, Any] | None = None
    """The events proposed from the shop's upcoming promotions (None: not read)."""
    proposals_warning: str = ""
    """Why no proposals were written tonight (the shop's API or S3 failed); the run stands."""
    tuning: dict[str, Any] | None = None
    """The shortfall goal's replay (`simulation.replay.Replay.record`), None if none ran."""
    tuning_note: str = ""
    """Why no quantile was tuned tonight (goal off, too few held-out minutes, no promotion)."""
    tuning_bounds_note: str = ""
    """Why the replay ran within the configured group bounds, not the group's own ('': it
    read the group, or had no group to read)."""

    @property
    def warning(self) -> str:
        return "; ".join(text for text in (self.calendar_warning, self.proposals_warning) if text)

    @property
    def promoted(self) -> bool:
        return self.status is RetrainStatus.PROMOTED

    def log_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "status": self.status.value,
            "reason": self.reason,
            "training_rows": self.training_rows,
            "holdout_rows": self.holdout_rows,
            "scores": self.scores,
            "capacity_per_instance": self.capacity_per_instance,
            "capacity_learned": self.capacity_learned,
            "headroom": self.headroom,
            "model": self.model,
            "champion": self.champion,
            "duration_seconds": round(self.duration_seconds, 3),
            "stage": self.stage,
        }
        if self.warm_up is not None:
            record["warm_up"] = self.warm_up
        if self.warm_up_error:
            record["warm_up_error"] = self.warm_up_error
        if self.notification_error:
            record["notification_error"] = self.notification_error
        if self.event_outcomes:
            record["event_outcomes"] = self.event_outcomes
        if self.events_kept_out:
            record["event_steps_kept_out"] = self.events_kept_out
        if self.calendar_warning:
            record["calendar_warning"] = self.calendar_warning
        if self.proposals is not None:
            record["proposals"] = self.proposals
        if self.proposals_warning:
            record["proposals_warning"] = self.proposals_warning
        if self.tuning is not None:
            record["tuning"] = self.tuning
        if self.tuning_note:
            record["tuning_note"] = self.tuning_note
        if self.tuning_bounds_note:
            record["tuning_bounds_note"] = self.tuning_bounds_note
        if self.history is not None:
            record["history"] = {
                "start": _iso(self.history.start),
                "end": _iso(self.history.end),
                "days_fetched": self.history.days_fetched,
                "days_backed_up": len(self.history.days_backed_up),
                "corrupt_backups": self.history.corrupt_backups,
                "impossible_values_dropped": self.history.impossible_values_dropped,
                "glitches_dropped": self.history.glitches_dropped,
                "steps_with_requests": self.history.steps_with_requests,
            }
        return record


def collect_history(
    now: int, settings: RetrainSettings, ports: RetrainPorts
) -> tuple[MetricHistory, HistoryReport]:
    """The training window, from the S3 backup and CloudWatch, with CloudWatch's recent
    days backed up to S3 on the way (idempotent merges, one object per UTC day); impossible
    values and glitches are gaps in what it returns (`series.clean_training_window`)."""
    end = floor_to_step(now) - STEP_SECONDS  # the bucket still filling is left for tomorrow
    start = end - settings.training_window_days * DAY_SECONDS
    report = HistoryReport(start=start, end=end)
    archived = ports.archive.read(start, end)

    oldest_in_cloudwatch = floor_to_step(now) - CLOUDWATCH_FIVE_MINUTE_RETENTION + STEP_SECONDS
    fresh = MetricHistory.empty(start, 0)
    for day_start in range(start - start % DAY_SECONDS, end, DAY_SECONDS):
        chunk_start, chunk_end = (
            max(day_start, start, oldest_in_cloudwatch),
            min(day_start + DAY_SECONDS, end),
        )
        if chunk_start >= chunk_end:
            continue
        recent = day_start + DAY_SECONDS > end - REFRESH_RECENT_DAYS * DAY_SECONDS
        backed_up = archived.window(chunk_start, chunk_end)[Metric.REQUESTS]
        if not recent and not np.any(np.isnan(backed_up)):
            continue
        # One GetMetricData call per day: far inside its per-call datapoint limit, and
        # each day is backed up as soon as it is read.
        day = ports.metrics.fetch(chunk_start, chunk_end, now)
        report.days_fetched += 1
        report.days_backed_up.extend(ports.archive.write(day))
        fresh = fresh.combine(day)

    report.corrupt_backups = list(ports.archive.corrupt_days)
    # Cleaned as read, never in the backup: the backup keeps what CloudWatch said.
    cleaned = clean_training_window(archived.combine(fresh).window(start, end))
    history = cleaned.history
    report.impossible_values_dropped, report.glitches_dropped = cleaned.impossible_values, cleaned.glitches
    report.steps_with_requests = int(np.sum(~np.isnan(history[Metric.REQUESTS])))
    return history, report


def run_retrain(
    now: int,
    settings: RetrainSettings,
    ports: RetrainPorts,
    clock: Callable[[], float] = time.perf_counter,
) -> RetrainResult:
    started = clock()
    result = _retrain(now, settings, ports)
    _propose_from_promotions(now, ports, result)
    result.duration_seconds = clock() - started
    subject = {
        RetrainStatus.PROMOTED: "promoted a new model",
        RetrainStatus.KEPT: "kept the serving model",
        RetrainStatus.REFUSED: "refused to train",
    }[result.status]
    if result.warm_up is not None:
        after = result.warm_up["first_model_after"]
        subject = f"is warming up: no model yet, the first can be trained after {after}"
    try:
        ports.notifier.notify(f"Saleor predictive scaling retrain {subject}", result.log_record())
    except Exception as error:  # SNS faults: the model published (or kept) stands
        result.notification_error = f"{type(error).__name__}: {error}"
    return result


def _retrain(now: int, settings: RetrainSettings, ports: RetrainPorts) -> RetrainResult:
    history, report = collect_history(now, settings, ports)
    result = RetrainResult(RetrainStatus.REFUSED, history=report)
    horizon = settings.horizon_steps
    events = _past_events(now, history, ports, result)
    inside_events = event_steps(history.start, len(history), events) if events else None
    result.events_kept_out = int(inside_events.sum()) if inside_events is not None else 0
    rows = training_rows(history, horizon, settings.timezone, inside_events)
    plan = training_plan(history, len(rows.targets), settings)
    if isinstance(plan, str):
        result.reason = f"{plan}. Predict keeps its current model or its safe fallback"
        _post_warm_up(now, history, settings, ports, result)
        return result
    result.stage = plan.stage
    if plan.stage == DAILY_STAGE:
        serving = _serving_stage(ports)
        if serving == FULL_STAGE:
            result.status = RetrainStatus.KEPT
            result.reason = (
                f"{plan.full_shortfall}; a daily-stage model never replaces the full model that serves, "
                "which is kept"
            )
            return result
        rows = daily_pattern_rows(rows)

    split = split_holdout_steps(rows, len(history), plan.holdout_steps, horizon)
    holdout = split.holdout
    result.training_rows, result.holdout_rows = len(split.fit.targets), len(holdout.targets)
    if (
        result.holdout_rows < plan.min_holdout_rows
        or result.training_rows < plan.needed_rows - result.holdout_rows - horizon
    ):
        result.reason = (
            f"the held-out tail has {result.holdout_rows} usable rows (need {plan.min_holdout_rows}): "
            "recent metrics are missing, so no model can be judged"
        )
        return result

    capacity = estimate_capacity_per_instance(
        history, settings.target_cpu_percent, settings.capacity_per_instance
    )
    result.capacity_per_instance, result.capacity_learned = capacity.requests_per_minute, capacity.learned
    config = TrainingConfig(
        horizon_steps=horizon,
        timezone=settings.timezone,
        n_estimators=settings.n_estimators,
        max_depth=settings.max_depth,
        headroom_condition=settings.headroom_condition,
    )
    challenger = train_challenger(history, split, config, capacity.requests_per_minute, capacity.learned)
    actual, challenger_forecast = challenger.actual, challenger.forecast
    baseline_forecast = seasonal_naive(history, horizon, plan.baseline_periods)[holdout.step_indices]
    judged = np.isfinite(challenger_forecast) & np.isfinite(baseline_forecast) & np.isfinite(actual)
    challenger_scores = error_scores(challenger_forecast[judged], actual[judged])
    baseline_scores = error_scores(baseline_forecast[judged], actual[judged])
    result.scores = {"challenger": _scores(challenger_scores), "seasonal_naive": _scores(baseline_scores)}

    contest = _champion_contest(
        history, holdout, challenger_forecast, actual, settings, ports, result, events
    )
    skipped = _skipped_note(result.champion)
    refusal = promotion_refusal(
        challenger_scores, baseline_scores, settings.promotion_tolerance, contest, plan.baseline_name
    )
    if refusal is not None:
        result.status, result.reason = RetrainStatus.KEPT, f"{refusal}{skipped}; the serving model is kept"
        return result

    # Judged on the tail it never saw, the same configuration is refitted on every row so
    # the model that serves has seen the latest days too.
    final = build_model(
        history,
        config,
        capacity.requests_per_minute,
        capacity.learned,
        rows=rows,
        headroom=challenger.headroom,
    )
    blob = final.ensemble.to_npz()
    megabytes = len(blob) / 1e6
    if megabytes > settings.max_model_megabytes:
        result.status = RetrainStatus.KEPT
        result.reason = (
            f"model is {megabytes:.1f} MB compressed, above the {settings.max_model_megabytes:g} MB bound; "
            "lower MAX_DEPTH or N_ESTIMATORS. The serving model is kept"
        )
        return result
    if final.ensemble.node_count > MAX_TOTAL_NODES:  # predict would refuse it: never publish it
        result.status = RetrainStatus.KEPT
        result.reason = (
            f"model has {final.ensemble.node_count} nodes, above the {MAX_TOTAL_NODES} that predict loads; "
            "lower MAX_DEPTH or N_ESTIMATORS. The serving model is kept"
        )
        return result
    scores = {
        "holdout_rows": float(challenger_scores.rows),
        "holdout_mae": challenger_scores.mae,
        "holdout_mape": challenger_scores.mape,
        "holdout_under_share": challenger_scores.under_share,
        "seasonal_naive_mae": baseline_scores.mae,
        "seasonal_naive_mape": baseline_scores.mape,
        "seasonal_naive_under_share": baseline_scores.under_share,
        "champion_mae": contest.champion.mae if contest is not None else math.nan,
    }
    metadata = replace(
        final.metadata,
        scores={name: round(value, 4) for name, value in scores.items() if math.isfinite(value)},
        stage=plan.stage,
        tuning=_tune(
            now,
            history,
            challenger,
            holdout,
            split.start,
            capacity.requests_per_minute,
            settings,
            ports,
            result,
        ),
    )
    published = ports.models.publish(blob, metadata)
    result.model = manifest_summary(published)
    try:
        ports.models.clear_warm_up()
    except Exception as error:  # S3 faults: the notice expires by itself within a day
        result.warm_up_error = f"{type(error).__name__}: {error}"
    if challenger.headroom is not None:
        result.headroom = challenger.headroom.describe()
    result.status = RetrainStatus.PROMOTED
    if contest is not None:
        champion_note = (
            f"; on the {contest.champion.rows} held-out steps the champion never saw: "
            f"{contest.challenger.mae:.1f} vs champion {contest.champion.mae:.1f}"
        )
    else:
        champion_note = skipped or " (no comparable champion)"
    result.reason = (
        f"{plan.stage} model: held-out MAE {challenger_scores.mae:.1f} vs {plan.baseline_name} "
        f"{baseline_scores.mae:.1f}{champion_note}{plan.next_stage_note}"
    )
    return result


LONGEST_LEASE_SECONDS = 24 * 3600
"""The longest floor lease predict may write (FALLBACK_RELEASE_MINUTES at most 24 h): a
record expiring later is not predict's, and the group's MinSize is then taken as set."""


def _replay_bounds(
    now: int, settings: RetrainSettings, ports: RetrainPorts, result: RetrainResult
) -> tuple[int, int]:
    """The MinSize and MaxSize the replay runs within: the group's own tonight, the
    operator's MinSize beneath any floor predict leased (`policy.read_floor`), so that a
    group the operator resized since the deploy is replayed as it is. Unreadable, the
    configured GroupMinSize and GroupMaxSize, and the report says so."""
    configured = (settings.group_min_size, settings.group_max_size)
    if ports.group is None:
        return configured
    try:
        group = read_floor(ports.group.describe(), now, LONGEST_LEASE_SECONDS).group
    except Exception as error:  # AWS faults, a group gone: the replay is advice, never a failed night
        result.tuning_bounds_note = (
            f"the group could not be read ({type(error).__name__}: {str(error)[:200]}); replayed within "
            f"GroupMinSize {configured[0]} and GroupMaxSize {configured[1]}"
        )
        return configured
    if group.max_size < 1:
        result.tuning_bounds_note = (
            f"the group's MaxSize is {group.max_size}; replayed within GroupMinSize {configured[0]} "
            f"and GroupMaxSize {configured[1]}"
        )
        return configured
    return max(group.min_size, 1), group.max_size


def _tune(
    now: int,
    history: MetricHistory,
    challenger: Challenger,
    holdout: TrainingRows,
    holdout_start: int,
    capacity_per_instance: float,
    settings: RetrainSettings,
    ports: RetrainPorts,
    result: RetrainResult,
) -> dict[str, Any]:
    """The manifest's `tuning` for the promoted model: the held-out days replayed at each
    quantile of the grid (`simulation.replay`) within the group's bounds tonight
    (`_replay_bounds`, read only then), or {} (predict then sizes for HeadroomQuantile as
    set) with the reason in the report."""
    if not settings.shortfall_goal.on:
        result.tuning_note = "TargetShortfallPercent is off: predict sizes for HeadroomQuantile as set"
        return {}
    bounds = _replay_bounds(now, settings, ports, result)
    started = time.perf_counter()
    replay = tune_on_holdout(
        history,
        challenger,
        holdout,
        holdout_start,
        capacity_per_instance,
        ReplaySettings.of(settings, bounds),
    )
    if isinstance(replay, str):
        result.tuning_note = f"no quantile tuned: {replay}; predict sizes for HeadroomQuantile as set"
        return {}
    result.tuning = {**replay.record(), "seconds": round(time.perf_counter() - started, 3)}
    return replay.chosen.to_manifest()


@dataclass(frozen=True)
class TrainingPlan:
    """Which model the history can grow (`model.MODEL_STAGES`) and how it is judged."""

    stage: str
    holdout_steps: int
    min_holdout_rows: int
    needed_rows: int
    baseline_periods: tuple[int, ...]
    baseline_name: str
    full_shortfall: str = ""
    """Why the history is too short for the full model (daily stage only)."""
    next_stage_note: str = ""


def training_plan(history: MetricHistory, usable_rows: int, settings: RetrainSettings) -> TrainingPlan | str:
    """The full model from MIN_HISTORY_DAYS; before that a daily-stage model from
    MIN_DAILY_HISTORY_DAYS (the same forest and features without the weekly ones, judged
    on the last DAILY_HOLDOUT_STEPS against the same time yesterday); before that, why
    nothing can be trained (a string)."""
    full_shortfall = history_shortfall(history, usable_rows, settings.min_history_days)
    if full_shortfall is None:
        return TrainingPlan(
            stage=FULL_STAGE,
            holdout_steps=settings.holdout_days * STEPS_PER_DAY,
            min_holdout_rows=MIN_HOLDOUT_ROWS,
            needed_rows=min_usable_rows(settings.min_history_days),
            baseline_periods=(STEPS_PER_DAY, STEPS_PER_WEEK),
            baseline_name="seasonal-naive",
        )
    if history_shortfall(history, usable_rows, MIN_DAILY_HISTORY_DAYS) is not None:
        return (
            f"{full_shortfall}; a first, daily-stage model needs {MIN_DAILY_HISTORY_DAYS} such days "
            "(MIN_DAILY_HISTORY_DAYS)"
        )
    first = history_start(history)
    full_from = (
        "" if first is None else f" from about {_iso(first + settings.min_history_days * DAY_SECONDS)}"
    )
    return TrainingPlan(
        stage=DAILY_STAGE,
        holdout_steps=DAILY_HOLDOUT_STEPS,
        min_holdout_rows=DAILY_MIN_HOLDOUT_ROWS,
        needed_rows=min_usable_rows(MIN_DAILY_HISTORY_DAYS),
        baseline_periods=(STEPS_PER_DAY,),
        baseline_name="same time yesterday",
        full_shortfall=full_shortfall,
        next_stage_note=(
            f"; a full model (weekly pattern) can replace it once the history spans "
            f"{settings.min_history_days} days{full_from}"
        ),
    )


def history_start(history: MetricHistory) -> int | None:
    """Epoch seconds of the first known RequestCount, None without any."""
    known = np.flatnonzero(np.isfinite(history[Metric.REQUESTS]))
    return int(history.timestamps()[known[0]]) if len(known) else None


def warm_up_notice(now: int, history: MetricHistory, reason: str) -> WarmUp:
    """What predict reads while no model exists: how much history there is and when the
    first nightly retrain can grow a daily-stage model from it."""
    known = np.flatnonzero(np.isfinite(history[Metric.REQUESTS]))
    span_days = (int(known[-1]) - int(known[0]) + 1) / STEPS_PER_DAY if len(known) else 0.0
    first = history_start(history)
    begins = first if first is not None else floor_to_step(now)
    return WarmUp(
        written_at=now,
        until=now + MAX_VALIDITY_SECONDS,
        history_days=span_days,
        needed_days=float(MIN_DAILY_HISTORY_DAYS),
        first_model_after=max(begins + MIN_DAILY_HISTORY_DAYS * DAY_SECONDS, now - DAY_SECONDS),
        reason=reason,
    )


def _serving_stage(ports: RetrainPorts) -> str | None:
    """The serving model's stage, None where no usable manifest serves."""
    try:
        return ports.models.current().stage
    except ModelError:
        return None


def _post_warm_up(
    now: int, history: MetricHistory, settings: RetrainSettings, ports: RetrainPorts, result: RetrainResult
) -> None:
    """A shop with no model at all is warming up (`saleor_scaling.warmup`): say so where
    predict reads it. Where a manifest exists, even an unusable one, nothing is written:
    predict's fallback is then a fault, and its alarm must go off."""
    try:
        ports.models.current()
        return
    except ModelNotFoundError:
        pass
    except ModelError:
        return
    notice = warm_up_notice(now, history, result.reason)
    try:
        ports.models.write_warm_up(notice)
    except Exception as error:  # S3 faults: predict falls back (and pages) instead
        result.warm_up_error = f"{type(error).__name__}: {error}"
        return
    result.warm_up = {
        "history_days": round(notice.history_days, 2),
        "needs_days": notice.needed_days,
        "first_model_after": _iso(notice.first_model_after),
        "full_model_needs_days": settings.min_history_days,
    }


def min_usable_rows(min_history_days: int) -> int:
    return int(min_history_days * STEPS_PER_DAY * MIN_USABLE_SHARE)


def history_shortfall(history: MetricHistory, usable_rows: int, min_history_days: int) -> str | None:
    """Why `history` is too little to train on, or None. "MIN_HISTORY_DAYS less gaps" means
    both: the known RequestCount spans at least MIN_HISTORY_DAYS from its first step to its
    last (a week for the weekly features to have seen a whole week, plus the held-out
    tail), and at least MIN_USABLE_SHARE of those days' steps are usable training rows.
    A count alone let 7 gapless days (more rows than 75 % of 9 days) train a first model."""
    known = np.flatnonzero(np.isfinite(history[Metric.REQUESTS]))
    span_days = (int(known[-1]) - int(known[0]) + 1) / STEPS_PER_DAY if len(known) else 0.0
    needed = min_usable_rows(min_history_days)
    if span_days >= min_history_days and usable_rows >= needed:
        return None
    return (
        f"the history spans {span_days:.1f} days with {usable_rows} usable 5-minute rows "
        f"({usable_rows / STEPS_PER_DAY:.1f} days); need MIN_HISTORY_DAYS {min_history_days} days "
        f"from first to last datapoint with at least {needed} usable rows in them "
        f"({MIN_USABLE_SHARE:.0%}: {min_history_days} days less gaps)"
    )


@dataclass(frozen=True)
class ChampionContest:
    """The challenger and the serving champion scored on the same held-out steps, none of
    which either of them trained on."""

    challenger: ErrorScores
    champion: ErrorScores


def promotion_refusal(
    challenger: ErrorScores,
    seasonal_naive: ErrorScores,
    tolerance: float,
    contest: ChampionContest | None,
    baseline_name: str = "seasonal-naive",
) -> str | None:
    """Why the challenger must not be promoted, or None if it may. It must strictly beat
    seasonal-naive on the held-out steps (a tie, 0.0 vs 0.0 included, is no evidence that
    a model helps; no tolerance), and, where a champion could be judged on steps it never
    saw (`contest`), not be worse than it: MAE at most (1 + `tolerance`) x the champion's,
    and under-forecast steps at most the champion's share + `tolerance`. A NaN refuses."""
    if contest is not None:
        mine, theirs = contest.challenger, contest.champion
        if not mine.mae <= theirs.mae * (1 + tolerance):
            return (
                f"challenger MAE {mine.mae:.1f} is worse than the champion's {theirs.mae:.1f} "
                f"(PROMOTION_TOLERANCE {tolerance:g}) on the {theirs.rows} held-out steps it never saw"
            )
        if not mine.under_share <= theirs.under_share + tolerance:
            return (
                f"challenger under-forecasts {mine.under_share:.1%} of steps, more than the champion's "
                f"{theirs.under_share:.1%} (PROMOTION_TOLERANCE {tolerance:g})"
            )
    if not (math.isfinite(challenger.mae) and math.isfinite(seasonal_naive.mae)):
        return (
            f"no held-out step has both a challenger and a {baseline_name} forecast, so nothing shows "
            "the challenger beats it"
        )
    if not challenger.mae < seasonal_naive.mae:
        return (
            f"challenger MAE {challenger.mae:.1f} does not beat {baseline_name}'s {seasonal_naive.mae:.1f} "
            "on the held-out steps (it must be strictly lower)"
        )
    return None


def _past_events(
    now: int, history: MetricHistory, ports: RetrainPorts, result: RetrainResult
) -> tuple[PlannedEvent, ...]:
    """The planned events that began inside the history (kept out of what the model learns
    as normal), and the outcome of each that has ended (`result.event_outcomes`). An
    unreadable or invalid calendar is ignored with a warning: trained as without events."""
    if ports.calendar is None:
        return ()
    try:
        calendar = ports.calendar.events(now)
    except CalendarError as error:
        result.calendar_warning = f"calendar ignored, trained as without events: {error}"[:500]
        return ()
    history_end = history.start + len(history) * STEP_SECONDS
    past = tuple(
        event for event in calendar.events if event.start < history_end and event.end > history.start
    )
    demand = history.demand_per_minute()
    for event in past:
        if event.end > history_end:
            continue  # still on: its outcome is recorded the night after it ends
        outcome = event_outcome(event, history.start, demand, past)
        if outcome is not None:
            result.event_outcomes.append(outcome.record())
    return past


MAX_WARNING_LENGTH = 500


def _propose_from_promotions(now: int, ports: RetrainPorts, result: RetrainResult) -> None:
    """The shop's upcoming promotions, written as proposed events with the multiplier the
    most recently ended past event suggests (`promotions.propose`). Whatever fails here
    (no network, a refused token, a changed schema, S3) is a warning in the report: the
    night's model, promoted or kept, stands, and yesterday's proposals stay."""
    if ports.promotions is None or ports.proposals is None:
        return
    learned = learned_multiplier(result.event_outcomes)
    try:
        proposals = propose(ports.promotions.upcoming(now, DAYS_AHEAD), now, learned)
        ports.proposals.save(proposals)
    except Exception as error:  # any fault of the shop's API or of S3: see the docstring
        result.proposals_warning = (
            f"no events proposed from the shop's promotions: {type(error).__name__}: {error}"
        )[:MAX_WARNING_LENGTH]
        return
    result.proposals = {
        "proposed": [proposal.name for proposal in proposals.proposals],
        "skipped": list(proposals.skipped),
        "multiplier": learned[0] if learned else None,
        "multiplier_from": learned[1] if learned else None,
    }


def _skipped_note(champion: dict[str, Any] | None) -> str:
    if champion is None or "skipped" not in champion:
        return ""
    return f"; comparison with the champion skipped: {champion['skipped']}"


def _champion_contest(
    history: MetricHistory,
    holdout: TrainingRows,
    challenger_forecast: FloatArray,
    actual: FloatArray,
    settings: RetrainSettings,
    ports: RetrainPorts,
    result: RetrainResult,
    events: tuple[PlannedEvent, ...] = (),
) -> ChampionContest | None:
    """The serving champion against the challenger on the held-out steps neither trained
    on, or None when there is no champion to judge there (`result.champion` says why)."""
    try:
        metadata = ports.models.current()
        champion = load_verified(
            ports.models.model_bytes(metadata), metadata, ServingBounds(settings.capacity_per_instance)
        )
    except ModelNotFoundError:
        return None
    except ModelError as error:
        result.champion = {"usable": False, "error": str(error)}
        return None  # an unservable champion is no standard; the baseline still judges
    result.champion = manifest_summary(metadata)

    inside_events = event_steps(history.start, len(history), events) if events else None
    champion_rows = training_rows(history, metadata.horizon_steps, metadata.timezone, inside_events)
    position = {int(index): k for k, index in enumerate(champion_rows.step_indices)}
    champion_forecast = np.full(len(holdout.step_indices), np.nan)
    shared = [
        (k, position[int(index)]) for k, index in enumerate(holdout.step_indices) if int(index) in position
    ]
    if shared:
        mine, theirs = (np.array(side) for side in zip(*shared, strict=True))
        champion_forecast[mine] = champion.forecast_many(
            champion_rows.features[theirs], champion_rows.levels[theirs]
        )
    if metadata.horizon_steps != settings.horizon_steps:
        # It forecast another step ahead; only its own target can judge it.
        champion_actual = actual_future_demand(history, metadata.horizon_steps)[holdout.step_indices]
    else:
        champion_actual = actual

    judged = np.isfinite(champion_forecast) & np.isfinite(challenger_forecast) & np.isfinite(actual)
    # The champion trained on days up to its own night: judged on them it would look
    # better than it is (a second retrain the same night would keep it on its own training
    # data). Only the held-out steps past its last training target judge it, the challenger
    # never trained on any held-out step; too few of those and the comparison is skipped.
    seen_until = datetime.fromisoformat(metadata.training_end).timestamp() + (
        metadata.horizon_steps * STEP_SECONDS
    )
    stamps = history.timestamps()[holdout.step_indices]
    unseen = judged & (stamps > seen_until)
    result.champion["comparable"] = bool(np.sum(unseen) >= MIN_UNSEEN_CHAMPION_ROWS)
    if not result.champion["comparable"]:
        result.champion["skipped"] = (
            f"it trained on the held-out days up to {_iso(int(seen_until))}, leaving "
            f"{int(np.sum(unseen))} steps neither model trained on (need {MIN_UNSEEN_CHAMPION_ROWS})"
        )
        return None
    contest = ChampionContest(
        challenger=error_scores(challenger_forecast[unseen], actual[unseen]),
        champion=error_scores(champion_forecast[unseen], champion_actual[unseen]),
    )
    result.scores["champion"] = _scores(contest.champion)
    result.scores["challenger_vs_champion"] = _scores(contest.challenger)
    return contest


def _scores(scores: ErrorScores) -> dict[str, float | None]:
    return {
        "mae": _finite(scores.mae),
        "mape": _finite(scores.mape),
        "under_share": _finite(scores.under_share),
        "rows": float(scores.rows),
    }


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
