"""Run under limited_run.py by test_hostile_inputs.py: the limit is MemorySize on top of
the baseline, no more and no less (a harness whose limit never bites proves nothing)."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import limit_memory, memory_limited

MEGABYTE = 2**20


@pytest.fixture(scope="module", autouse=True)
def _limited() -> None:
    limit_memory()


def test_most_of_memory_size_is_usable():
    with memory_limited():
        block = bytearray(400 * MEGABYTE)
        block[::4096] = b"\1" * len(block[::4096])
    assert len(block) == 400 * MEGABYTE


def test_more_than_memory_size_is_a_memory_error():
    with memory_limited(), pytest.raises(MemoryError):
        bytearray(600 * MEGABYTE)
    bytearray(600 * MEGABYTE)  # lifted after the run
