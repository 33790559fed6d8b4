"""The simulated group and the predict function inside it: served code, not a tool.

The backtest (`saleor_scaling.backtest`) and the nightly retrain's replay of the shop's own
history (`saleor_scaling.tuning`) both run a group and AWS target tracking
(`simulation.simulator`) with predict's own decisions (`simulation.strategies`), so these
modules ship in the Lambda layer; the backtest's trace loading, peers and reports do not.
"""
