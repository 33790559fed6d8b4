"""Predict keeps in its state what the stabilization window must remember: with
WINDOW_HOLDS_REACTIVE_FLOOR off, a run raised to its reactive floor stores the
forecast-driven recommendation, and says so in its log line (issue 23, item 2)."""

from __future__ import annotations

from saleor_scaling.predict_service import run_predict
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import ModelLocation, PolicySettings, PredictSettings, ScalingMode
from tests.unit.test_forged_state_in_predict import SLOT
from tests.unit.test_predict_service_exact import ANCHOR, RecordingHistory, make_ports, our_floor, with_model


def hot_anchor() -> RecordingHistory:
    """The anchor bucket's CPU at 100 % on 1 instance: at a 30 % target it needs 4."""
    history = RecordingHistory(1.0, Metric.IN_SERVICE)
    values = dict(history.history.values)
    values[Metric.CPU] = values[Metric.CPU].copy()
    values[Metric.CPU][(ANCHOR - history.history.start) // 300] = 100.0
    history.history = MetricHistory(history.history.start, values, 300)
    return history


def run(holds_floor: bool) -> tuple[dict[str, object], dict[str, object]]:
    ports = make_ports(our_floor(until=SLOT + 1500), models=with_model())
    ports.metrics = ports.archive = hot_anchor()
    settings = PredictSettings(
        auto_scaling_group_name="saleor-api",
        load_balancer_full_name="app/saleor/0123456789abcdef",
        model=ModelLocation(bucket="models"),
        policy=PolicySettings(
            mode=ScalingMode.FORECAST_AND_SCALE,
            max_scale_in_step=1,
            target_cpu_percent=30.0,
            window_holds_reactive_floor=holds_floor,
        ),
    )
    result = run_predict(SLOT, settings, ports, received_at=SLOT + 2.0)
    return ports.state.document, result.log_record()  # type: ignore[attr-defined]


def test_the_state_remembers_the_forecast_not_the_floor() -> None:
    state, record = run(holds_floor=False)
    assert record["reactive_floor"] == 4
    decision = record["decision"]
    assert isinstance(decision, dict)
    assert (decision["recommended"], decision["remembered"], decision["target"]) == (4, 2, 7)
    assert state["recommendations"] == [[SLOT, 2]]


def test_by_default_the_state_remembers_the_floor() -> None:
    state, record = run(holds_floor=True)
    decision = record["decision"]
    assert isinstance(decision, dict)
    assert (decision["recommended"], decision["target"]) == (4, 7)
    assert "remembered" not in decision
    assert state["recommendations"] == [[SLOT, 4]]
