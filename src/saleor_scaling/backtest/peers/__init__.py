"""What a user could switch on instead of this project, each modelled from its own
documentation or code (sources in each module's docstring), run on the same simulated
group beside target tracking, reading only the observed 5-minute history:

* reactive-lower: target tracking alone at a lower CPU and requests-per-target target
  (more headroom, no forecast; `simulator.TargetTracking`);
* aws-predictive-perfect / aws-predictive-patterns: EC2 Auto Scaling predictive scaling
  (`aws_predictive`), fed a perfect hourly forecast (the limit of the approach) or one
  from the daily and weekly patterns of the last 14 days;
* phpa: the Predictive Horizontal Pod Autoscaler's Holt-Winters and linear models on the
  replica history, maximum with the HPA calculation (`phpa`);
* crane-dsp: Crane's EffectiveHPA with its DSP (FFT) predictor (`crane`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from saleor_scaling.backtest.observed import PER_MINUTE, Observation
from saleor_scaling.backtest.peers.aws_predictive import (
    AwsPredictiveSettings,
    forecast_by_refresh,
    perfect_hourly_load,
    schedule,
)
from saleor_scaling.backtest.peers.common import (
    MINUTES_PER_STEP,
    PlanMode,
    PlannedController,
    decision_anchors,
    decision_minutes,
    plan_from_decisions,
)
from saleor_scaling.backtest.peers.crane import CraneSettings, crane_decisions
from saleor_scaling.backtest.peers.phpa import PhpaSettings, phpa_decisions
from saleor_scaling.series import FloatArray, MetricHistory
from saleor_scaling.simulation.simulator import SimulationRecord, TargetTracking, simulate

if TYPE_CHECKING:
    from saleor_scaling.backtest.config import BacktestConfig

PEERS: tuple[str, ...] = (
    "reactive-lower",
    "aws-predictive-perfect",
    "aws-predictive-patterns",
    "phpa",
    "crane-dsp",
)

LABELS = {
    "reactive-lower": "reactive at a lower target",
    "aws-predictive-perfect": "AWS perfect-hour + reactive",
    "aws-predictive-patterns": "AWS 14d-pattern + reactive",
    "phpa": "PHPA Holt-Winters + reactive",
    "crane-dsp": "Crane EHPA DSP + reactive",
}

COLOURS = {
    "reactive-lower": "tab:orange",
    "aws-predictive-perfect": "tab:brown",
    "aws-predictive-patterns": "tab:pink",
    "phpa": "tab:olive",
    "crane-dsp": "tab:cyan",
}


@dataclass(frozen=True)
class PeerSettings:
    """Each peer's knob (the sweep varies them; these are the report's defaults)."""

    reactive_lower_cpu_percent: float = 50.0
    """The lower target tracking target; the requests-per-target target is lowered in
    proportion."""
    aws_target_ratio: float = 1.0
    """AWS predictive scaling's TargetValue as a share of the requests one instance serves
    at the CPU target (1.0: the same 1,000 requests per target as target tracking)."""
    aws_buffer_seconds: int = 300
    phpa_target_ratio: float = 1.0
    phpa_smoothing: tuple[float, float, float] = (0.9, 0.9, 0.9)
    """Holt-Winters alpha, beta, gamma (PHPA's documented example; it has no default)."""
    crane_margin_fraction: float | None = None
    """None: Crane's 8 default estimators (it picks the margin, 0.01 to 0.20, itself)."""
    crane_target_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.reactive_lower_cpu_percent <= 100:
            raise ValueError("reactive_lower_cpu_percent must be in (0, 100]")
        for name in ("aws_target_ratio", "phpa_target_ratio", "crane_target_ratio"):
            if not 0 < getattr(self, name) <= 2:
                raise ValueError(f"{name} must be in (0, 2]")
        if self.crane_margin_fraction is not None and not 0 <= self.crane_margin_fraction <= 5:
            raise ValueError("crane_margin_fraction must be in [0, 5]")
        AwsPredictiveSettings(scheduling_buffer_seconds=self.aws_buffer_seconds)
        alpha, beta, gamma = self.phpa_smoothing
        PhpaSettings(alpha=alpha, beta=beta, gamma=gamma)


def observed_step_load(history: MetricHistory) -> FloatArray:
    """Requests per minute of each 5-minute step of the observed history: the one input
    every forecasting peer reads (whatever the runner decides the history holds)."""
    return history.demand_per_minute()


def peer_plans(
    demand: FloatArray,
    start: int,
    history: MetricHistory,
    config: BacktestConfig,
    peers: PeerSettings,
    observation: Observation = PER_MINUTE,
) -> dict[str, PlannedController]:
    """The forecasting peers' plans (reactive-lower has none: it is target tracking)."""
    group = config.group_settings()
    minutes = len(demand)
    capacity = config.capacity_per_instance
    decided_at = decision_minutes(minutes)
    anchors = decision_anchors(history, start, decided_at, observation)
    load = observed_step_load(history)
    aws = AwsPredictiveSettings(capacity * peers.aws_target_ratio, peers.aws_buffer_seconds)

    def aws_perfect() -> PlannedController:
        starts, loads = perfect_hourly_load(demand, start)
        return PlannedController(
            schedule(starts, loads, minutes, aws, group), PlanMode.RAISE, "aws-predictive"
        )

    def aws_patterns() -> PlannedController:
        starts, loads = forecast_by_refresh(
            history, start, minutes, aws.scheduling_buffer_seconds, observation
        )
        return PlannedController(
            schedule(starts, loads, minutes, aws, group), PlanMode.RAISE, "aws-predictive"
        )

    def phpa() -> PlannedController:
        alpha, beta, gamma = peers.phpa_smoothing
        settings = PhpaSettings(
            target_value=capacity * peers.phpa_target_ratio, alpha=alpha, beta=beta, gamma=gamma
        )
        wanted = phpa_decisions(load, anchors, settings)
        return PlannedController(
            plan_from_decisions(minutes, decided_at, wanted, group), PlanMode.SET, "phpa"
        )

    def crane() -> PlannedController:
        target = capacity * peers.crane_target_ratio
        settings = (
            CraneSettings(target_value=target)
            if peers.crane_margin_fraction is None
            else CraneSettings.with_margin(peers.crane_margin_fraction, target_value=target)
        )
        wanted = crane_decisions(load, decided_at // MINUTES_PER_STEP, anchors, settings)
        return PlannedController(
            plan_from_decisions(minutes, decided_at, wanted, group), PlanMode.SET, "crane"
        )

    builders: dict[str, Callable[[], PlannedController]] = {
        "aws-predictive-perfect": aws_perfect,
        "aws-predictive-patterns": aws_patterns,
        "phpa": phpa,
        "crane-dsp": crane,
    }
    return {name: build() for name, build in builders.items() if name in config.strategies}


def run_peer(
    name: str,
    demand: FloatArray,
    start: int,
    history: MetricHistory,
    config: BacktestConfig,
    peers: PeerSettings,
    observation: Observation = PER_MINUTE,
) -> SimulationRecord:
    """One peer on the simulated group, target tracking alongside; `history` is what
    CloudWatch held (`observed`), read at the anchors `observation` allows."""
    group = config.group_settings()
    if name == "reactive-lower":
        ratio = peers.reactive_lower_cpu_percent / config.policy.target_cpu_percent
        tracking = replace(
            config.target_tracking_settings(with_predictive=False),
            target_cpu_percent=peers.reactive_lower_cpu_percent,
            target_requests_per_instance=config.capacity_per_instance * ratio,
        )
        return simulate(demand, group, TargetTracking(tracking))
    plans = peer_plans(
        demand, start, history, replace(config, strategies=("reactive", "oracle", name)), peers, observation
    )
    controller = plans[name]
    tracking_settings = config.target_tracking_settings(with_predictive=True)
    return simulate(demand, group, TargetTracking(tracking_settings), controller, decision_every=1)


def peers_in(strategies: tuple[str, ...]) -> list[str]:
    return [name for name in PEERS if name in strategies]


__all__ = [
    "COLOURS",
    "LABELS",
    "PEERS",
    "PeerSettings",
    "observed_step_load",
    "peer_plans",
    "peers_in",
    "run_peer",
]
