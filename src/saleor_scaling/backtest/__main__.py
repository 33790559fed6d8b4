"""`python -m saleor_scaling.backtest`."""

import sys

from saleor_scaling.backtest.cli import main

# Guarded: the worker processes that train nights in parallel (spawned) import this module.
if __name__ == "__main__":
    sys.exit(main())
