"""run_predict through in-memory ports, value by value: the clock bounds at their values,
the lease's records and the order they are written in, the reasons and the log record as
an operator reads them. Every expected value is written out literally."""

from __future__ import annotations

from typing import Any

import pytest

from saleor_scaling.lease import Lease
from saleor_scaling.model import Forecast, ModelMetadata
from saleor_scaling.policy import GroupCapacity, GroupFacts
from saleor_scaling.predict_service import PredictPorts, Status, run_predict
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation, PolicySettings, PredictSettings, ScalingMode
from saleor_scaling.state import StateConflictError
from tests.unit.fakes import FakeGroup, FakeModels, FakeNotifier, FakeState, HistoryPort
from tests.unit.test_forged_state_in_predict import SLOT, NoModel, shop

SLOT_ISO = "2023-11-28T03:00:00Z"
BEFORE = SLOT - 300
"""The slot before, which wrote the lease."""


def settings(mode: ScalingMode = ScalingMode.FORECAST_AND_SCALE, **overrides: Any) -> PredictSettings:
    return PredictSettings(
        auto_scaling_group_name="saleor-api",
        load_balancer_full_name="app/saleor/0123456789abcdef",
        model=ModelLocation(bucket="models"),
        policy=PolicySettings(mode=mode, max_scale_in_step=1),
        **overrides,
    )


class RecordingGroup(FakeGroup):
    """Every write, in order, as (call, value)."""

    def __init__(self, *args: Any, fail_lease_writes: tuple[int, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[str, object]] = []
        self.fail_lease_writes = fail_lease_writes
        self.lease_writes = 0

    def describe(self) -> GroupFacts:
        self.events.append(("describe", None))
        return super().describe()

    def set_capacity(self, desired: int, floor: int, bounds: GroupCapacity) -> None:
        super().set_capacity(desired, floor, bounds)
        self.events.append(("set_capacity", (desired, floor)))

    def set_floor(self, floor: int, bounds: GroupCapacity) -> None:
        super().set_floor(floor, bounds)
        self.events.append(("set_floor", floor))

    def write_lease(self, lease: Lease) -> None:
        self.lease_writes += 1
        if self.lease_writes in self.fail_lease_writes:
            raise RuntimeError("throttled")
        super().write_lease(lease)
        self.events.append(("write_lease", lease.encode()))


def our_floor(
    until: int, floor: int = 8, prior: int = 8, min_size: int = 8, slot: int = BEFORE
) -> RecordingGroup:
    tag = f"v1 floor={floor} prior={prior} base=2 until={until} slot={slot}"
    return RecordingGroup(desired=8, min_size=min_size, max_size=14, lease_tag=tag)


def make_ports(
    group: FakeGroup, models: object = None, document: dict[str, Any] | None = None, notifier: Any = None
) -> PredictPorts:
    history, _, _ = shop()
    state = FakeState()
    state.document = document
    return PredictPorts(
        metrics=HistoryPort(history),
        archive=HistoryPort(history),
        group=group,
        models=models or NoModel(),  # type: ignore[arg-type]
        state=state,
        notifier=notifier or FakeNotifier(),
    )


def with_model() -> FakeModels:
    _, blob, metadata = shop()
    return FakeModels(blob, metadata)


FALLBACK_REASON = "model unavailable: no manifest; holding capacity, reactive scaling stays in charge"


# --- the event's clock ---------------------------------------------------------------------


def test_an_event_240_s_old_runs_and_241_s_is_stale():
    group = our_floor(until=SLOT + 1500)
    assert run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 240).status is Status.FALLBACK
    group = our_floor(until=SLOT + 1500)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 241)
    assert result.status is Status.REJECTED
    assert result.reason == (
        f"stale event: its time {SLOT_ISO} is 241 s before the function's clock "
        "(EVENT_MAX_DELAY_SECONDS 240); nothing read or changed"
    )
    assert group.events == []


def test_an_event_60_s_early_runs_and_61_s_is_refused():
    group = our_floor(until=SLOT + 1500)
    assert run_predict(SLOT, settings(), make_ports(group), received_at=SLOT - 60).status is Status.FALLBACK
    group = our_floor(until=SLOT + 1500)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT - 61)
    assert result.status is Status.REJECTED
    assert result.reason == (
        f"early event: its time {SLOT_ISO} is 61 s after the function's clock "
        "(EVENT_MAX_EARLY_SECONDS 60); nothing read or changed"
    )
    assert group.events == []


def test_no_clock_check_without_a_clock_or_when_switched_off():
    group = our_floor(until=SLOT + 1500)
    assert run_predict(SLOT, settings(), make_ports(group), received_at=None).status is Status.FALLBACK
    group = our_floor(until=SLOT + 1500)
    off = settings(event_clock_check=False)
    assert run_predict(SLOT, off, make_ports(group), received_at=SLOT + 9999).status is Status.FALLBACK


# --- the lease: given back first, held, adopted, confirmed ------------------------------------


def test_an_expired_lease_is_given_back_before_anything_else_is_read():
    group = our_floor(until=SLOT + 2)
    ports = make_ports(group)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert group.events == [
        ("describe", None),
        ("write_lease", f"v1 floor=2 prior=8 base=2 until=0 slot={BEFORE}"),
        ("set_floor", 2),
        ("write_lease", f"v1 floor=2 prior=2 base=2 until=0 slot={BEFORE}"),
    ]
    assert result.floor_released is True
    assert result.changed_group is True
    assert result.floor_note == "MinSize 8 -> 2: the floor's lease expired at 2023-11-28T03:00:02Z"
    assert result.status is Status.FALLBACK
    assert result.reason == FALLBACK_REASON
    assert result.lease_until is None
    assert result.group == GroupCapacity(2, 14, 8, 8, current_min_size=2, floor_managed=True)
    assert ports.state.document["last_decision"] == {  # type: ignore[attr-defined]
        "time": SLOT_ISO,
        "status": "fallback",
        "reason": "model unavailable: no manifest",
    }


def test_the_lease_is_judged_by_the_functions_clock_not_the_events():
    group = our_floor(until=SLOT + 3)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert (result.floor_released, group.min_size) == (False, 8)
    group = our_floor(until=SLOT + 1)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 1.0)
    assert (result.floor_released, group.min_size) == (True, 2)
    group = our_floor(until=SLOT)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=None)
    assert (result.floor_released, group.min_size) == (True, 2)


def test_a_held_floor_stays_through_a_fallback_and_says_until_when():
    group = our_floor(until=SLOT + 1500)
    ports = make_ports(group)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert group.events == [("describe", None)]
    assert result.floor_released is False
    assert result.changed_group is False
    assert result.fallback_used is True
    assert result.lease_until == SLOT + 1500
    assert result.reason == (
        f"{FALLBACK_REASON}; the floor MinSize 8 is leased until 2023-11-28T03:25:00Z, "
        "then goes back to the operator's MinSize 2 unless a decision renews it"
    )
    assert result.log_record() == {
        "status": "fallback",
        "decision_time": SLOT_ISO,
        "mode": "forecast-and-scale",
        "reason": result.reason,
        "inputs": {},
        "model": {},
        "group": {
            "min": 2,
            "max": 14,
            "desired": 8,
            "in_service": 8,
            "min_size_now": 8,
            "floor_managed": True,
        },
        "floor_lease_until": "2023-11-28T03:25:00Z",
    }


def test_forecast_only_deployment_gives_any_floor_back():
    group = our_floor(until=SLOT + 1500)
    result = run_predict(SLOT, settings(ScalingMode.FORECAST_ONLY), make_ports(group), received_at=SLOT + 2.0)
    assert result.floor_released is True
    assert result.floor_note == "MinSize 8 -> 2: forecast-only mode gives the floor back"
    assert group.min_size == 2
    assert result.log_record()["floor_released"] is True
    assert result.log_record()["mode"] == "forecast-only"


def test_a_min_size_set_elsewhere_is_recorded_as_the_operators():
    group = our_floor(until=SLOT + 1500, min_size=11)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert group.events == [
        ("describe", None),
        ("write_lease", f"v1 floor=11 prior=11 base=11 until=0 slot={BEFORE}"),
    ]
    assert result.floor_note == (
        "MinSize 11 was set outside predict (its lease holds 8): adopted as the operator's MinSize"
    )
    assert result.reason == FALLBACK_REASON
    assert group.min_size == 11


@pytest.mark.parametrize("min_size", [5, 8])
def test_an_unconfirmed_change_is_confirmed_by_the_next_run(min_size):
    group = our_floor(until=SLOT + 1500, floor=8, prior=5, min_size=min_size)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert group.events == [
        ("describe", None),
        ("write_lease", f"v1 floor={min_size} prior={min_size} base=2 until={SLOT + 1500} slot={BEFORE}"),
    ]
    assert result.floor_note == ""


def test_a_failed_confirmation_is_a_warning_and_the_release_stands():
    group = our_floor(until=SLOT)
    group.fail_lease_writes = (2,)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert group.min_size == 2
    assert result.floor_released is True
    assert result.floor_note == (
        "warning: could not confirm the floor's lease (RuntimeError: throttled); "
        "MinSize 8 -> 2: the floor's lease expired at 2023-11-28T03:00:00Z"
    )
    assert result.status is Status.FALLBACK
    assert result.log_record()["floor_note"] == result.floor_note


def test_a_failed_lease_write_before_the_release_leaves_min_size_alone():
    group = our_floor(until=SLOT)
    group.fail_lease_writes = (1,)
    with pytest.raises(RuntimeError):
        run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert (group.min_size, group.events) == (8, [("describe", None)])


# --- one action per slot ---------------------------------------------------------------------


def test_a_slot_the_state_or_the_lease_names_is_a_duplicate():
    for document, slot in (({"format": 1, "last_decision_time": SLOT}, BEFORE), (None, SLOT)):
        group = our_floor(until=SLOT + 1500, slot=slot)
        result = run_predict(SLOT, settings(), make_ports(group, document=document), received_at=SLOT + 2.0)
        assert result.status is Status.DUPLICATE
        assert result.reason == f"slot {SLOT_ISO} already decided (replayed or late event)"
        assert group.events == [("describe", None)]
    group = our_floor(until=SLOT + 1500, slot=BEFORE)
    document = {"format": 1, "last_decision_time": BEFORE}
    result = run_predict(SLOT, settings(), make_ports(group, document=document), received_at=SLOT + 2.0)
    assert result.status is Status.FALLBACK


class ConflictingState(FakeState):
    def save(self, document: dict[str, Any], version: str | None) -> None:
        raise StateConflictError("version 7, not 6")


def test_a_slot_claimed_concurrently_is_a_duplicate():
    group = our_floor(until=SLOT + 1500)
    ports = make_ports(group)
    ports.state = ConflictingState()
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.DUPLICATE
    assert result.decision is None
    assert result.reason == f"another run decided slot {SLOT_ISO} concurrently (version 7, not 6)"
    assert result.lease_until is None


def test_a_corrupt_state_is_reset_and_reported():
    group = our_floor(until=SLOT + 1500)
    result = run_predict(SLOT, settings(), make_ports(group, document={"format": 99}), received_at=SLOT + 2.0)
    assert result.state_reset != ""
    assert result.log_record()["state_reset"] == result.state_reset
    assert result.status is Status.FALLBACK


# --- a dry run writes nothing ----------------------------------------------------------------


def test_a_dry_run_lists_every_write_and_makes_none():
    group = our_floor(until=SLOT)
    document = {"format": 1, "last_decision_time": SLOT}
    ports = make_ports(group, document=document)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0, dry_run=True)
    assert group.events == [("describe", None)]
    assert (group.min_size, group.lease_tag) == (8, f"v1 floor=8 prior=8 base=2 until={SLOT} slot={BEFORE}")
    assert ports.state.document == document  # type: ignore[attr-defined]
    assert result.status is Status.DRY_RUN
    assert result.dry_run_outcome == "fallback"
    assert result.would == [
        f"write the lease tag 'v1 floor=2 prior=8 base=2 until=0 slot={BEFORE}'",
        "set MinSize 2",
        f"write the lease tag 'v1 floor=2 prior=2 base=2 until=0 slot={BEFORE}'",
        f"record slot {SLOT_ISO} in the state",
    ]
    assert result.reason == f"dry run, nothing written or changed: {FALLBACK_REASON}"
    assert result.log_record()["dry_run"] == {"would_be": "fallback", "would": result.would}
    assert result.log_record()["status"] == "dry-run"


# --- a decision renews the lease -------------------------------------------------------------


def test_a_scale_in_writes_the_lease_then_the_group_then_confirms():
    group = our_floor(until=SLOT + 1500)
    notifier = FakeNotifier()
    ports = make_ports(group, models=with_model(), notifier=notifier)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    assert group.events == [
        ("describe", None),
        ("write_lease", f"v1 floor=7 prior=8 base=2 until={SLOT + 1800} slot={SLOT}"),
        ("set_capacity", (7, 7)),
        ("write_lease", f"v1 floor=7 prior=7 base=2 until={SLOT + 1800} slot={SLOT}"),
    ]
    assert result.lease_until == SLOT + 1800
    assert [subject for subject, _ in notifier.notices] == [
        "Saleor predictive scaling: scale-in saleor-api 8 -> 7"
    ]
    assert notifier.notices[0][1] == result.log_record()
    assert result.reason == result.decision.explanation  # type: ignore[union-attr]
    record = result.log_record()
    assert record["decision"]["applied"] is True
    assert record["decision"]["target"] == 7
    assert record["floor_lease_until"] == "2023-11-28T03:30:00Z"
    state = ports.state.document  # type: ignore[attr-defined]
    assert state["last_decision_time"] == SLOT
    assert state["last_decision"] == {
        "time": SLOT_ISO,
        "target": 7,
        "floor": 7,
        "action": "scale-in",
        "applied": True,
    }


class BrokenNotifier:
    def notify(self, subject: str, body: dict[str, Any]) -> None:
        raise RuntimeError("topic deleted")


def test_a_failed_notice_is_reported_and_the_change_stands():
    group = our_floor(until=SLOT + 1500)
    ports = make_ports(group, models=with_model(), notifier=BrokenNotifier())
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    assert result.notification_error == "RuntimeError: topic deleted"
    assert result.log_record()["notification_error"] == "RuntimeError: topic deleted"
    assert (group.min_size, group.desired) == (7, 7)


def test_forecast_only_decides_and_writes_nothing():
    group = RecordingGroup(desired=8, min_size=2, max_size=14)
    ports = make_ports(group, models=with_model())
    result = run_predict(SLOT, settings(ScalingMode.FORECAST_ONLY), ports, received_at=SLOT + 2.0)
    assert result.status is Status.DECIDED
    assert group.events == [("describe", None)]
    assert result.lease_until is None
    assert result.log_record()["decision"]["applied"] is False


def test_a_model_is_loaded_once_while_warm():
    group = our_floor(until=SLOT + 1500)
    models = with_model()
    loads: list[ModelMetadata] = []
    original = models.model_bytes

    def counting(metadata: ModelMetadata) -> bytes:
        loads.append(metadata)
        return original(metadata)

    models.model_bytes = counting  # type: ignore[method-assign]
    ports = make_ports(group, models=models)
    run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    run_predict(SLOT + 300, settings(), ports, received_at=SLOT + 302.0)
    assert loads == [models.metadata]
    assert list(ports.model_cache) == ["v1"]


# --- what the forecast reads and remembers ---------------------------------------------------

ANCHOR = SLOT - 600
"""2023-11-28T02:50:00Z: two steps before the slot."""


class RecordingHistory(HistoryPort):
    """The shop's history, with the anchor's RequestCount replaced, and every read recorded."""

    def __init__(self, anchor_requests: float | None = None, metric: Metric = Metric.REQUESTS) -> None:
        history, _, _ = shop()
        if anchor_requests is not None:
            values = {metric: array.copy() for metric, array in history.values.items()}
            values[metric][(ANCHOR - history.start) // history.step] = anchor_requests
            history = MetricHistory(history.start, values, history.step)
        super().__init__(history)
        self.reads: list[tuple[str, int, int, int | None]] = []

    def fetch(self, start: int, end: int, now: int) -> MetricHistory:
        self.reads.append(("fetch", start, end, now))
        return super().fetch(start, end, now)

    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory:
        self.reads.append(("read", start, end, sealed_before))
        return super().read(start, end, sealed_before)


def test_26_hours_come_from_cloudwatch_and_the_week_before_from_the_backup():
    history = RecordingHistory()
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.metrics = ports.archive = history
    ports.archive.corrupt_days.append("2023-11-20")  # reported by an earlier run: cleared
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    # anchor + 300 back 312 steps; the rest back to anchor - (2018 + 4 + 3) steps; the
    # backup's days up to the one that ended two days before the clock are sealed.
    assert history.reads == [
        ("fetch", 1701046500, 1701140100, 1701140400),
        ("read", 1700532300, 1701046500, 1701043200),
    ]
    assert result.corrupt_history == []
    assert "corrupt_history" not in result.log_record()


def test_the_log_record_of_a_decision_holds_the_inputs_and_the_forecast():
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    record = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0).log_record()
    # The anchor bucket of the synthetic shop: 8454.44 requests in 5 minutes, CPU 59.18 %
    # on 2 instances, response time 0.1392 s.
    assert record["inputs"] == {
        "demand_per_minute": 1690.8871,
        "response_time_seconds": 0.1392,
        "cpu_percent": 59.181,
        "in_service_at_anchor": 2.0,
        "errors_5xx": 0.0,
        "history_steps": 2026.0,
    }
    assert record["forecast"]["target_time"] == "2023-11-28T03:10:00Z"
    assert record["forecast"]["quantile"] == 0.6
    assert record["forecast"]["headroom_basis"] == "per-tree quantile"
    assert record["reactive_floor"] == 2
    assert record["model"]["model_version_id"] == "v1"
    assert record["decision"] == {
        "recommended": 2,
        "target": 7,
        "floor": 7,
        "action": "scale-in",
        "applied": True,
        "clamps": ["scale-in limited to 1 instance(s) per run"],
        "explanation": "scale-in: set desired 7, floor 7 (scale-in limited to 1 instance(s) per run)",
    }
    assert "forecast_error" not in record


def test_the_state_keeps_the_window_and_scores_the_forecast_made_for_the_anchor():
    window_start = SLOT - 1800
    document = {
        "format": 1,
        "last_decision_time": BEFORE,
        "recommendations": [[window_start, 9], [window_start + 300, 2]],
        "forecasts": {str(ANCHOR): 3.0, str(ANCHOR + 300): 1.5},
    }
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model(), document=document)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    # 3.0 forecast for the anchor, 1690.8871/min served at 1000/min per instance.
    assert result.forecast_error == pytest.approx(1.3091, abs=1e-4)
    assert result.log_record()["forecast_error"] == 1.3091
    state = ports.state.document  # type: ignore[attr-defined]
    assert state["recommendations"] == [[window_start + 300, 2], [SLOT, 2]]
    assert state["forecasts"] == {str(ANCHOR + 300): 1.5, str(SLOT + 600): 1.6905}
    assert (ports.group.min_size, ports.group.desired) == (7, 7)  # type: ignore[attr-defined]


def test_demand_above_ten_times_the_trained_peak_is_a_fallback():
    # The model was trained on 4414/min at most: the ceiling is 44144/min.
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.metrics = ports.archive = RecordingHistory(anchor_requests=250_000.0)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.FALLBACK
    assert result.reason.startswith(
        "RequestCount at the anchor bucket 2023-11-28T02:50:00Z is 50000/min, above the sanity "
        "ceiling 44144/min (DEMAND_CEILING_FACTOR 10 x the 99.9th percentile of the clean demand "
        "it was trained on, 4414/min); holding capacity"
    )
    assert result.implausible_values == 1
    assert result.log_record()["implausible_values"] == 1


def test_demand_under_the_ceiling_is_served():
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    # 219000 requests in 5 minutes: 43800/min, just under the ceiling of 44144/min.
    ports.metrics = ports.archive = RecordingHistory(anchor_requests=219_000.0)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    assert result.implausible_values == 0
    assert "implausible_values" not in result.log_record()


def test_no_requestcount_at_the_anchor_is_a_fallback():
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.metrics = ports.archive = RecordingHistory(anchor_requests=float("nan"))
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.FALLBACK
    assert result.reason.startswith(
        "no valid RequestCount for the anchor bucket 2023-11-28T02:50:00Z: metrics missing or stale; "
    )


def test_a_missing_input_is_logged_as_null():
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.metrics = ports.archive = RecordingHistory(float("nan"), Metric.RESPONSE_TIME)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    assert result.log_record()["inputs"]["response_time_seconds"] is None


# --- a floor held without a change, and the dry run of a decision -----------------------------


def held_floor() -> RecordingGroup:
    """Predict's floor of 2 over the operator's 1, where the quiet hour needs 2 anyway."""
    tag = f"v1 floor=2 prior=2 base=1 until={SLOT + 600} slot={BEFORE}"
    return RecordingGroup(desired=2, min_size=2, max_size=14, lease_tag=tag)


def test_a_decision_that_holds_the_floor_renews_its_lease_and_keeps_the_slot():
    group = held_floor()
    result = run_predict(SLOT, settings(), make_ports(group, models=with_model()), received_at=SLOT + 2.0)
    assert result.status is Status.DECIDED
    assert result.reason == "hold: hold desired 2, floor 2 (forecast used as is)"
    assert group.events == [
        ("describe", None),
        ("write_lease", f"v1 floor=2 prior=2 base=1 until={SLOT + 1800} slot={BEFORE}"),
    ]
    assert result.lease_until == SLOT + 1800


def test_a_forecast_only_event_neither_renews_nor_gives_back_the_floor():
    group = held_floor()
    ports = make_ports(group, models=with_model())
    result = run_predict(
        SLOT, settings(), ports, mode_override=ScalingMode.FORECAST_ONLY, received_at=SLOT + 2.0
    )
    assert result.status is Status.DECIDED
    assert result.mode is ScalingMode.FORECAST_ONLY
    assert group.events == [("describe", None)]
    assert result.lease_until is None


def test_a_dry_run_of_a_scale_in_lists_the_writes_in_order():
    group = our_floor(until=SLOT + 1500)
    notifier = FakeNotifier()
    ports = make_ports(group, models=with_model(), notifier=notifier)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0, dry_run=True)
    assert result.would == [
        f"record slot {SLOT_ISO} in the state",
        f"write the lease tag 'v1 floor=7 prior=8 base=2 until={SLOT + 1800} slot={SLOT}'",
        "set desired capacity 7 and MinSize 7",
        f"write the lease tag 'v1 floor=7 prior=7 base=2 until={SLOT + 1800} slot={SLOT}'",
        "send the notice 'Saleor predictive scaling: scale-in saleor-api 8 -> 7'",
    ]
    assert result.dry_run_outcome == "scaled"
    assert group.events == [("describe", None)]
    assert (group.min_size, group.desired) == (8, 8)
    assert notifier.notices == []
    assert ports.state.document is None  # type: ignore[attr-defined]


def test_a_dry_run_keeps_the_events_mode_and_clock():
    group = our_floor(until=SLOT + 1500)
    ports = make_ports(group, models=with_model())
    result = run_predict(
        SLOT,
        settings(),
        ports,
        mode_override=ScalingMode.FORECAST_ONLY,
        received_at=SLOT + 2.0,
        dry_run=True,
    )
    assert (result.dry_run_outcome, result.mode) == ("decided", ScalingMode.FORECAST_ONLY)
    assert result.would == [f"record slot {SLOT_ISO} in the state"]
    stale = run_predict(SLOT, settings(), ports, received_at=SLOT + 241.0, dry_run=True)
    assert (stale.status, stale.dry_run_outcome, stale.would) == (Status.DRY_RUN, "rejected", [])


class StubModel:
    """The shop's model as predict's cache holds it, forecasting a fixed demand."""

    def __init__(self, mean: float, upper: float) -> None:
        self.metadata = shop()[2]
        self.mean, self.upper = mean, upper

    def forecast(self, features: Any, level: float, quantile: float, burstiness: float = 0.0) -> Forecast:
        return Forecast(self.mean, self.upper, quantile, 0.0)


@pytest.mark.parametrize(
    ("mean", "upper", "usable"),
    [
        (0.0, 0.0, True),
        (500.0, 900.0, True),
        (float("nan"), 900.0, False),
        (500.0, float("inf"), False),
        (500.0, -0.001, False),
    ],
)
def test_a_forecast_that_is_not_a_number_of_instances_is_a_fallback(mean, upper, usable):
    group = our_floor(until=SLOT + 1500)
    ports = make_ports(group, models=with_model())
    ports.model_cache["v1"] = StubModel(mean, upper)  # type: ignore[assignment]
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    if usable:
        assert result.status is Status.SCALED
        return
    assert result.status is Status.FALLBACK
    assert result.reason.startswith(f"the forecast is not a usable number ({upper!r}/min); holding capacity")


@pytest.mark.parametrize(
    ("in_service", "reactive"),
    [
        (1.0, 4),  # 1 instance at 100 % for a 30 % target: 4
        (0.5, 2),  # under one instance: the CPU says nothing, 1690.9/min needs 2
        (float("nan"), 2),
    ],
)
def test_the_cpu_counts_over_the_fleet_that_measured_it(in_service, reactive):
    history = RecordingHistory(in_service, Metric.IN_SERVICE)
    values = dict(history.history.values)
    values[Metric.CPU] = values[Metric.CPU].copy()
    values[Metric.CPU][(ANCHOR - history.history.start) // 300] = 100.0
    history.history = MetricHistory(history.history.start, values, 300)
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.metrics = ports.archive = history
    hot = PredictSettings(
        auto_scaling_group_name="saleor-api",
        load_balancer_full_name="app/saleor/0123456789abcdef",
        model=ModelLocation(bucket="models"),
        policy=PolicySettings(
            mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1, target_cpu_percent=30.0
        ),
    )
    result = run_predict(SLOT, hot, ports, received_at=SLOT + 2.0)
    assert result.reactive_floor == reactive


def test_a_recommendation_in_the_window_holds_scale_in():
    document = {"format": 1, "last_decision_time": BEFORE, "recommendations": [[BEFORE, 8]]}
    group = our_floor(until=SLOT + 1500)
    result = run_predict(
        SLOT, settings(), make_ports(group, models=with_model(), document=document), received_at=SLOT + 2.0
    )
    assert (group.min_size, group.desired) == (8, 8)
    assert result.decision is not None
    assert result.decision.target == 8


def test_a_floor_at_the_operators_min_size_writes_no_lease():
    group = RecordingGroup(desired=2, min_size=2, max_size=14)
    result = run_predict(SLOT, settings(), make_ports(group, models=with_model()), received_at=SLOT + 2.0)
    assert result.reason == "hold: hold desired 2, floor 2 (forecast used as is)"
    assert group.events == [("describe", None)]
    assert result.lease_until is None


def test_a_fallback_keeps_the_window_and_the_pending_forecasts():
    document = {
        "format": 1,
        "last_decision_time": BEFORE,
        "recommendations": [[BEFORE, 5]],
        "forecasts": {str(SLOT + 300): 2.5},
    }
    ports = make_ports(our_floor(until=SLOT + 1500), document=document)
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.FALLBACK
    state = ports.state.document  # type: ignore[attr-defined]
    assert state["recommendations"] == [[BEFORE, 5]]
    assert state["forecasts"] == {str(SLOT + 300): 2.5}


def test_the_log_record_of_a_forecast_rounds_each_figure_to_4_places():
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    stub = StubModel(500.0, 900.0)
    stub.forecast = lambda features, level, quantile, burstiness=0.0: Forecast(  # type: ignore[method-assign]
        500.00004, 900.00004, quantile, 0.123456
    )
    ports.model_cache["v1"] = stub  # type: ignore[assignment]
    record = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0).log_record()
    assert record["forecast"] == {
        "target_time": "2023-11-28T03:10:00Z",
        "demand_mean_per_minute": 500.0,
        "demand_upper_per_minute": 900.0,
        "quantile": 0.6,
        "headroom": 1.8,
        "headroom_basis": "per-tree quantile",
        "tree_spread": 0.1235,
        "capacity_upper": 0.9,
        "headroom_quantile": {
            "value": 0.6,
            "source": "as set",
            "why": "as set: HeadroomQuantile 0.6 (the model carries no tuning)",
        },
    }


class CorruptArchive(RecordingHistory):
    def read(self, start: int, end: int, sealed_before: int | None = None) -> MetricHistory:
        self.corrupt_days.append("2023-11-21")
        return super().read(start, end, sealed_before)


def test_corrupt_backup_days_are_reported():
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.archive = CorruptArchive()
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.corrupt_history == ["2023-11-21"]
    assert result.log_record()["corrupt_history"] == ["2023-11-21"]


# --- the faults on a decision's path ---------------------------------------------------------


def test_a_decision_whose_slot_was_claimed_concurrently_changes_nothing():
    group = our_floor(until=SLOT + 1500)
    ports = make_ports(group, models=with_model())
    ports.state = ConflictingState()
    result = run_predict(SLOT, settings(), ports, received_at=SLOT + 2.0)
    assert result.status is Status.DUPLICATE
    assert result.reason == f"another run decided slot {SLOT_ISO} concurrently (version 7, not 6)"
    assert group.events == [("describe", None)]


def test_a_change_under_an_unreadable_tag_sets_desired_only_and_writes_no_lease():
    group = RecordingGroup(desired=8, min_size=2, max_size=14, lease_tag="garbage")
    result = run_predict(SLOT, settings(), make_ports(group, models=with_model()), received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    assert group.events == [("describe", None), ("set_capacity", (7, 2))]
    assert result.lease_until is None


def test_a_failed_confirmation_after_a_change_is_a_warning():
    group = our_floor(until=SLOT + 1500)
    group.fail_lease_writes = (2,)
    result = run_predict(SLOT, settings(), make_ports(group, models=with_model()), received_at=SLOT + 2.0)
    assert result.status is Status.SCALED
    assert result.floor_note == "warning: could not confirm the floor's lease (RuntimeError: throttled)"


def test_a_failed_adoption_record_is_a_warning():
    group = our_floor(until=SLOT + 1500, min_size=11)
    group.fail_lease_writes = (1,)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert result.floor_note == (
        "MinSize 11 was set outside predict (its lease holds 8): adopted as the operator's MinSize; "
        "warning: could not confirm the floor's lease (RuntimeError: throttled)"
    )


def test_an_expiry_61_s_past_the_longest_lease_is_given_back():
    group = our_floor(until=SLOT + 2 + 1800 + 61)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert (result.floor_released, group.min_size) == (True, 2)
    group = our_floor(until=SLOT + 2 + 1800 + 60)
    result = run_predict(SLOT, settings(), make_ports(group), received_at=SLOT + 2.0)
    assert (result.floor_released, group.min_size) == (False, 8)
