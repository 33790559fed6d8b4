"""Predictive scaling for a Saleor shop: the domain code that predict, retrain and the
backtest share, so that training and serving can never drift apart."""

STEP_SECONDS = 300
"""Every series is on a 5-minute grid: the period of the metrics we read and the rate
at which the predict function runs."""

METRICS_NAMESPACE = "SaleorPredictiveScaling"

__all__ = ["METRICS_NAMESPACE", "STEP_SECONDS"]
