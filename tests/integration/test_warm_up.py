"""Warming up is not a fault: with no model and retrain's valid warm-up notice, predict says
"warming up" (its own status and metric, no FallbackUsed, so no fallback alarm); without a
valid notice a missing model is the fallback and its alarm, whatever the notice claims."""

from __future__ import annotations

import json

import pytest

from saleor_scaling.warmup import WarmUp
from tests.integration.conftest import NOW, emitted_metrics

SLOT = NOW - NOW % 300
NIGHTLY = SLOT - 9 * 3600  # the retrain that wrote the notice ran at 03:00 that day


def notice(**changes: int | float | str) -> WarmUp:
    fields: dict[str, int | float | str] = {
        "written_at": NIGHTLY,
        "until": NIGHTLY + 26 * 3600,
        "history_days": 1.2,
        "needed_days": 2.0,
        "first_model_after": SLOT + 18 * 3600,
        "reason": "the history spans 1.2 days",
    }
    fields.update(changes)
    return WarmUp(**fields)  # type: ignore[arg-type]


@pytest.fixture
def young_world(world):
    """The shop as a new stack finds it: no manifest, and whatever notice the test leaves."""
    world.session.client("s3").delete_object(Bucket=world.shop.bucket, Key="models/manifest.json")
    return world


def put_notice(world, body: bytes) -> None:
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="models/warm-up.json", Body=body)


def test_a_valid_notice_makes_a_missing_model_a_warm_up_that_pages_nobody(young_world, capsys):
    put_notice(young_world, notice().to_json())
    queue = young_world.subscribe_queue()

    result = young_world.invoke()

    assert result["status"] == "warming-up"
    assert result["reason"].startswith(
        "warming up, no model yet: the history spans 1.2 days, the first model needs 2 and can be "
        "trained by the first nightly retrain after 2023-11-29T06:00:00Z; holding capacity"
    )
    assert result["warm_up"] == {
        "history_days": 1.2,
        "first_model_after": "2023-11-29T06:00:00Z",
        "hours_to_first_model": 18.0,
        "notice_until": "2023-11-29T05:00:00Z",
    }
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["WarmingUp"] == 1
    assert metrics["HoursToFirstModel"] == 18.0
    assert "FallbackUsed" not in metrics  # the fallback alarm reads only this
    assert young_world.notices(queue) == []
    assert young_world.describe()["MinSize"] == 1  # nothing changed
    # A decided slot: the same event again is a duplicate.
    assert young_world.invoke()["status"] == "duplicate"


def test_without_a_notice_a_missing_model_is_the_fallback(young_world, capsys):
    result = young_world.invoke()

    assert result["status"] == "fallback"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["FallbackUsed"] == 1
    assert "WarmingUp" not in metrics


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (notice(until=SLOT).to_json(), "the warm-up notice expired at"),
        (notice(written_at=SLOT - 26 * 3600 - 1, until=SLOT - 1).to_json(), "expired"),
        # Forged to mask a missing model for a month:
        (notice(until=SLOT + 30 * 86400).to_json(), "claims a validity longer than one nightly run"),
        (notice(written_at=SLOT + 3600, until=SLOT + 7200).to_json(), "written in the future"),
        (notice(first_model_after=SLOT + 900 * 86400).to_json(), "expects the first model at an impossible"),
        (b"{oops", "warm-up notice unreadable"),
        (b"[" * 100_000, "warm-up notice unreadable"),
        (json.dumps({**json.loads(notice().to_json()), "extra": 1}).encode(), "warm-up notice unreadable"),
        (json.dumps({**json.loads(notice().to_json()), "history_days": True}).encode(), "unreadable"),
    ],
)
def test_a_notice_that_does_not_hold_is_no_warm_up(young_world, capsys, body, why):
    put_notice(young_world, body)

    result = young_world.invoke()

    assert result["status"] == "fallback"
    assert why in result["reason"]
    assert emitted_metrics(capsys.readouterr().out)["FallbackUsed"] == 1


def test_a_notice_never_masks_a_manifest_that_cannot_be_served(world, capsys):
    put_notice(world, notice().to_json())
    world.session.client("s3").put_object(Bucket=world.shop.bucket, Key="models/manifest.json", Body=b"{oops")

    result = world.invoke()

    assert result["status"] == "fallback"
    assert "warming up" not in result["reason"]
    assert emitted_metrics(capsys.readouterr().out)["FallbackUsed"] == 1


def test_a_warm_up_lasts_only_while_the_nightly_retrain_renews_it(young_world):
    put_notice(young_world, notice().to_json())
    assert young_world.invoke()["status"] == "warming-up"

    # The retrain stopped running: 26 hours after it wrote the notice, the missing model
    # is a fault again.
    later = NIGHTLY + 26 * 3600
    result = young_world.invoke(young_world.advance(later + 17))

    assert result["status"] == "fallback"
    assert "expired" in result["reason"]


def test_what_retrain_writes_predict_reads_back():
    """What retrain writes is what predict reads back, field for field."""
    written = notice()
    assert WarmUp.from_json(written.to_json()) == written
