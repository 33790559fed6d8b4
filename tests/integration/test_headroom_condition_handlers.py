"""The headroom conditioned on recent burstiness through the real handlers, on emulated AWS:
retrain with HEADROOM_CONDITION=recent-burstiness publishes a table that says so, predict
serves it, and a forged condition makes predict fall back and scale nothing."""

from __future__ import annotations

import pytest

from tests.integration.test_forged_models import (
    assert_fell_back_and_scaled_nothing,
    current_manifest,
    write_manifest,
)
from tests.integration.test_retrain_handler import (  # noqa: F401 (fixtures)
    long_history,
    retrain_world,
)

TABLE = {"basis": "busiest minute", "rows": 200, "band_edges": [], "factors": [[1.1] * 50]}
"""A valid table (the emulated shop's model carries none)."""


pytestmark = pytest.mark.usefixtures("unbind_handler_loggers")


def test_retrain_with_the_condition_publishes_a_scaled_table(retrain_world, monkeypatch):  # noqa: F811
    world = retrain_world
    monkeypatch.setenv("HEADROOM_CONDITION", "recent-burstiness")
    result = world.promoted_tonight()

    assert result["headroom"]["scaled_by"] == "recent-burstiness"
    metadata = world.registry().current()
    assert metadata.headroom["scaled_by"] == "recent-burstiness"
    assert metadata.headroom["basis"] == "busiest minute"


def test_retrain_by_default_publishes_a_table_as_before(retrain_world):  # noqa: F811
    world = retrain_world
    result = world.promoted_tonight()

    assert "scaled_by" not in result["headroom"]
    assert "scaled_by" not in world.registry().current().headroom


SCALED_TABLE = {
    "basis": "busiest minute",
    "rows": 200,
    "band_edges": [],
    "scaled_by": "recent-burstiness",
    "burstiness_scaled_factors": [[1.1] * 50],
}


@pytest.mark.parametrize(
    "table", [SCALED_TABLE, {**TABLE, "scaled_by": "none"}], ids=["recent-burstiness", "none"]
)
def test_predict_serves_a_table_with_a_known_condition(world, table):
    s3, bucket = world.session.client("s3"), world.shop.bucket
    manifest = current_manifest(s3, bucket)
    write_manifest(s3, bucket, {**manifest, "headroom": table})

    result = world.invoke()

    assert result["status"] == "scaled", result
    assert result["forecast"]["headroom_basis"] == "busiest minute"


@pytest.mark.parametrize("scaled_by", ["volatility", 1, None])
def test_predict_falls_back_on_a_forged_condition(world, capsys, scaled_by):
    s3, bucket = world.session.client("s3"), world.shop.bucket
    manifest = current_manifest(s3, bucket)
    write_manifest(s3, bucket, {**manifest, "headroom": {**TABLE, "scaled_by": scaled_by}})

    result = world.invoke()

    assert_fell_back_and_scaled_nothing(world, result, capsys.readouterr().out)
    assert "scaled_by" in result["reason"]
