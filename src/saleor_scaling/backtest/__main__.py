"""`python -m saleor_scaling.backtest`."""

import sys

from saleor_scaling.backtest.cli import main

sys.exit(main())
