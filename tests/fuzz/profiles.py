"""Hypothesis profiles of the hostile-input harness.

`ci` (the default, what `pytest` and CI run): a few hundred examples in all, derandomized,
so that a CI run is the same run every time and never flakes. `fuzz` (`make fuzz`, or
SALEOR_FUZZ_PROFILE=fuzz): twenty times as many, random, with hypothesis's example
database so that a failure found once is replayed first next time.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "SALEOR_FUZZ_PROFILE"
FUZZ_SCALE = 20
"""How many times the CI example count `make fuzz` runs."""

_SLOW_IS_EXPECTED = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.function_scoped_fixture,
    HealthCheck.large_base_example,
]

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, suppress_health_check=_SLOW_IS_EXPECTED
)
settings.register_profile("fuzz", deadline=None, suppress_health_check=_SLOW_IS_EXPECTED)


def profile() -> str:
    name = os.environ.get(PROFILE_VARIABLE, "ci")
    if name not in ("ci", "fuzz"):
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: expected ci or fuzz")
    return name


def load_profile() -> None:
    settings.load_profile(profile())


def examples(in_ci: int) -> int:
    """The example count of one property: `in_ci` in CI, FUZZ_SCALE times it under `make fuzz`
    (SALEOR_FUZZ_SCALE overrides the factor, for a quick look or a long night)."""
    scale = float(os.environ.get("SALEOR_FUZZ_SCALE", FUZZ_SCALE if profile() == "fuzz" else 1))
    return max(1, round(in_ci * scale))
