"""Invariants of the policy and of predict's input handling, for any input hypothesis
finds: capacity always within [MinSize, MaxSize], never below the reactive floor, scale-in
at most the step, forecast-only never changes desired capacity, the operator's MinSize
never undercut, and no exception escapes run_predict for any metric value."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saleor_scaling.lease import LeaseError, decode
from saleor_scaling.model import ModelMetadata
from saleor_scaling.policy import GroupCapacity, GroupFacts, decide, read_floor
from saleor_scaling.predict_service import Status, run_predict
from saleor_scaling.series import Metric, MetricHistory
from saleor_scaling.settings import PolicySettings, ScalingMode
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import synthetic_history
from tests.unit.fakes import FakeGroup, memory_ports, shop_settings

MONDAY = 1_700_438_400


@st.composite
def groups(draw: st.DrawFn) -> GroupCapacity:
    max_size = draw(st.integers(0, 200))
    min_size = draw(st.integers(0, max_size))
    current_min = draw(st.integers(min_size, max_size))
    desired = draw(st.integers(current_min, max_size))
    in_service = draw(st.integers(0, desired))
    managed = draw(st.booleans())
    return GroupCapacity(min_size, max_size, desired, in_service, current_min, floor_managed=managed)


policies = st.builds(
    PolicySettings,
    mode=st.sampled_from(list(ScalingMode)),
    max_scale_in_step=st.integers(0, 100),
    scale_in_stabilization_minutes=st.integers(0, 1440),
    window_holds_reactive_floor=st.booleans(),
)
forecasts = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=2000, deadline=None)
@given(
    forecast=forecasts,
    group=groups(),
    reactive=st.integers(0, 10_000),
    recent=st.lists(st.integers(0, 10_000), max_size=12),
    policy=policies,
)
def test_policy_invariants(forecast, group, reactive, recent, policy):
    decision = decide(forecast, group, reactive, recent, policy)
    target = decision.target
    assert group.min_size <= target <= group.max_size
    assert target >= min(reactive, group.max_size)  # never below the reactive floor
    if target < group.desired:
        assert group.desired - target <= policy.max_scale_in_step
    if policy.max_scale_in_step == 0:
        assert target >= group.desired
    if policy.mode is ScalingMode.FORECAST_ONLY:
        assert not decision.apply
    if group.floor_managed:
        assert group.min_size <= decision.floor <= target
        if policy.max_scale_in_step:
            assert decision.floor >= min(target, group.floor - policy.max_scale_in_step)
    else:
        assert decision.floor == group.floor
    # What the window remembers is within the group's bounds, never above this run's
    # recommendation, and the recommendation itself unless the floor is left out of it.
    assert group.min_size <= decision.window_entry <= decision.recommended <= group.max_size
    if policy.window_holds_reactive_floor or reactive == 0:
        assert decision.window_entry == decision.recommended


lease_fields = st.tuples(
    *(st.integers(0, 120) for _ in range(3)), st.integers(0, 2 * 10**9), st.integers(0, 2 * 10**9)
)


@settings(max_examples=2000, deadline=None)
@given(
    max_size=st.integers(0, 100),
    data=st.data(),
    lease_tag=st.one_of(
        st.none(),
        st.text(max_size=40),
        lease_fields.map(lambda f: f"v1 floor={f[0]} prior={f[1]} base={f[2]} until={f[3]} slot={f[4]}"),
    ),
    now=st.integers(0, 2 * 10**9),
)
def test_floor_reading_never_undercuts_a_min_size_it_did_not_set(max_size, data, lease_tag, now):
    current = data.draw(st.integers(0, max_size))
    desired = data.draw(st.integers(current, max_size))
    facts = GroupFacts(current, max_size, desired, desired, lease_tag)
    reading = read_floor(facts, now, 1800)
    group = reading.group
    assert 0 <= group.min_size <= group.max_size == max_size
    assert group.floor == current
    try:
        lease = None if lease_tag is None else decode(lease_tag, max_size)
    except LeaseError:
        assert not group.floor_managed  # an unusable tag: MinSize is left alone
        assert reading.note.startswith("warning:")
        return
    if lease is None or current not in (lease.floor, lease.prior):
        # Nobody recorded it as predict's: MinSize is the operator's, never gone below.
        assert group.min_size == current
        assert reading.ownership.lease is None
    else:
        assert group.min_size == lease.base <= current
        # Released only once expired (a lease longer than any renewal counts as expired).
        expired = now >= lease.until or lease.until > now + 1800 + 60
        assert reading.ownership.due(now) == (expired and current > lease.base)
    # A slot after the clock is never trusted: it would make the real runs duplicates.
    assert reading.ownership.slot <= now + 60


# --- run_predict on any metric values --------------------------------------------------


@cache
def shop() -> tuple[MetricHistory, bytes, ModelMetadata]:
    history = synthetic_history(MONDAY, 9, peak_per_minute=8000.0, seed=3)
    model = build_model(
        history.window(MONDAY, MONDAY + 8 * 86400), TrainingConfig(horizon_steps=4, n_estimators=8), 1000.0
    )
    blob = model.ensemble.to_npz()
    return history, blob, model.metadata.with_artifact(blob, "models/model.npz", "v1")


NOW = MONDAY + 8 * 86400 + 13 * 3600 + 17
ANCHOR_INDEX = (NOW - NOW % 300 - 600 - MONDAY) // 300

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e12, 1e300, -1e300, 500.0, 1e-300, math.nan, math.inf]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    corrupt=st.dictionaries(
        st.sampled_from(list(Metric)),
        st.lists(st.tuples(st.integers(-14, 0), values), min_size=1, max_size=4),
        max_size=4,
    ),
    desired=st.integers(1, 20),
    mode=st.sampled_from(list(ScalingMode)),
    step=st.integers(0, 3),
)
def test_no_input_makes_predict_raise_or_leave_the_group_bounds(corrupt, desired, mode, step):
    history, blob, metadata = shop()
    series = {metric: np.array(history[metric], copy=True) for metric in Metric}
    for metric, points in corrupt.items():
        for offset, value in points:
            series[metric][ANCHOR_INDEX + offset] = value
    poisoned = MetricHistory(start=history.start, values=series)
    group = FakeGroup(desired=desired, max_size=20)
    ports = memory_ports(poisoned, group, blob, metadata)
    settings_ = shop_settings(PolicySettings(mode=mode, max_scale_in_step=step))
    result = run_predict(NOW, settings_, ports, received_at=NOW + 2.0)
    assert result.status in {Status.SCALED, Status.DECIDED, Status.FALLBACK}
    assert 1 <= group.desired <= 20
    assert group.min_size <= group.desired
    if mode is ScalingMode.FORECAST_ONLY:
        assert group.desired == desired
    if result.status is Status.FALLBACK:
        assert group.desired == desired
    if group.desired < desired:
        assert desired - group.desired <= step
    # Demand far beyond the model's training is never acted on.
    anchor_demand = poisoned.demand_per_minute()[ANCHOR_INDEX]
    if math.isfinite(anchor_demand) and anchor_demand > 10 * metadata.training_demand_max_per_minute:
        assert result.status is Status.FALLBACK
