"""What a forged state object could make predict do, run by run (the probe of issue 21):
each was possible before the state's times were checked against the function's clock."""

from __future__ import annotations

from functools import cache
from typing import Any

from saleor_scaling.model import ModelMetadata, ModelNotFoundError
from saleor_scaling.predict_service import PredictPorts, Status, run_predict
from saleor_scaling.series import MetricHistory
from saleor_scaling.settings import ModelLocation, PolicySettings, PredictSettings, ScalingMode
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import synthetic_history
from tests.unit.fakes import FakeGroup, FakeModels, FakeNotifier, FakeState, HistoryPort

MONDAY = 1_700_438_400
SLOT = MONDAY + 8 * 86400 + 3 * 3600
"""A quiet hour (03:00 UTC) on the ninth day of the synthetic shop."""
YEAR_2100 = 4_102_444_800
SETTINGS = PredictSettings(
    auto_scaling_group_name="saleor-api",
    load_balancer_full_name="app/saleor/0123456789abcdef",
    model=ModelLocation(bucket="models"),
    policy=PolicySettings(mode=ScalingMode.FORECAST_AND_SCALE, max_scale_in_step=1),
)


@cache
def shop() -> tuple[MetricHistory, bytes, ModelMetadata]:
    history = synthetic_history(MONDAY, 9, peak_per_minute=4000.0, seed=3)
    model = build_model(
        history.window(MONDAY, MONDAY + 8 * 86400), TrainingConfig(horizon_steps=4, n_estimators=8), 1000.0
    )
    blob = model.ensemble.to_npz()
    return history, blob, model.metadata.with_artifact(blob, "models/model.npz", "v1")


class NoModel:
    def current(self) -> ModelMetadata:
        raise ModelNotFoundError("no manifest")

    def model_bytes(self, metadata: ModelMetadata) -> bytes:
        raise AssertionError("never reached")

    def warm_up(self) -> None:
        return None


def group_with_our_floor() -> FakeGroup:
    """MinSize 8 is the floor predict raised at the slot before, leased for 30 minutes; the
    operator's MinSize is 2."""
    lease = f"v1 floor=8 prior=8 base=2 until={SLOT - 300 + 1800} slot={SLOT - 300}"
    return FakeGroup(desired=8, min_size=8, max_size=14, lease_tag=lease)


def ports(group: FakeGroup, document: dict[str, Any], models: object) -> PredictPorts:
    history, _, _ = shop()
    state = FakeState()
    state.document = document
    return PredictPorts(
        metrics=HistoryPort(history),
        archive=HistoryPort(history),
        group=group,
        models=models,  # type: ignore[arg-type]
        state=state,
        notifier=FakeNotifier(),
    )


def test_a_recommendation_a_day_ahead_does_not_hold_scale_in():
    """Before: the forged recommendation was in every run's stabilization window for a day
    and held the group at 8 through the quiet night. Now the state is reset and the quiet
    hour scales in by MAX_SCALE_IN_STEP (1)."""
    _, blob, metadata = shop()
    group = group_with_our_floor()
    document = {
        "format": 1,
        "last_decision_time": SLOT - 300,
        "recommendations": [[SLOT + 23 * 3600, 100_000]],
        "last_floor": 8,
    }
    run_ports = ports(group, document, FakeModels(blob, metadata))
    result = run_predict(SLOT, SETTINGS, run_ports, received_at=SLOT + 2.0)
    assert (group.min_size, group.desired) == (7, 7)
    assert result.status in {Status.SCALED, Status.DECIDED}
    assert "recommendation time" in result.state_reset


def test_a_last_decision_a_day_ahead_does_not_make_the_slot_a_duplicate():
    """Before: every run for 23 hours was a duplicate, deciding nothing."""
    group = group_with_our_floor()
    document = {"format": 1, "last_decision_time": SLOT + 23 * 3600, "last_floor": 8}
    result = run_predict(SLOT, SETTINGS, ports(group, document, NoModel()), received_at=SLOT + 2.0)
    assert result.status is Status.FALLBACK
    assert "last_decision_time" in result.state_reset


def test_fallback_since_2100_does_not_keep_the_floor_forever():
    """Before: `decision_time - fallback_since` stayed negative and the floor never went.
    Now nothing reads fallback_since (an old document's is ignored, not a reset), and the
    floor is a lease the state cannot extend: the run at the lease's expiry (30 minutes
    after the decision that wrote it) gives it back."""
    group = group_with_our_floor()
    document = {"format": 1, "last_decision_time": SLOT - 300, "fallback_since": YEAR_2100, "last_floor": 8}
    run_ports = ports(group, document, NoModel())
    floors, resets = [], []
    for run in range(7):
        now = SLOT + run * 300
        result = run_predict(now, SETTINGS, run_ports, received_at=now + 2.0)
        assert result.status is Status.FALLBACK
        floors.append(group.min_size)
        resets.append(bool(result.state_reset))
    assert floors == [8, 8, 8, 8, 8, 2, 2]
    assert resets == [False, False, False, False, False, False, False]
