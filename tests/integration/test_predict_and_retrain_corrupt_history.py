"""A history object of the wrong shape, through the real handlers: predict still decides
with that day missing, and retrain counts it in CorruptHistoryObjects.

Named to sort after test_local_run.py: a Powertools Logger keeps the stream handler of the
first handler module loaded in the process, so loading predict earlier sends
test_local_run's handler logs to the wrong stdout (a fragility of that test, not of these)."""

from __future__ import annotations

import gzip

import numpy as np

from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.features import HISTORY_STEPS_NEEDED, LEVEL_STEPS
from saleor_scaling.series import Metric
from tests.integration.conftest import MONDAY, NOW, emitted_metrics
from tests.integration.test_retrain_handler import (  # noqa: F401 (fixtures used by name)
    RETRAIN_AT,
    RetrainWorld,
    long_history,
    retrain_world,
)

DAY = 86400
HORIZON_STEPS = 4  # the `trained_model` fixture's


def test_predict_reads_a_json_list_in_last_weeks_history_as_a_missing_day(world, capsys):
    archive = S3HistoryArchive(
        world.session.client("s3"), world.shop.bucket, f"history/{world.shop.group_name}"
    )
    week_ago = NOW - 7 * DAY
    bad_day = week_ago - week_ago % DAY  # holds the anchor's same-time-last-week step
    world.session.client("s3").put_object(
        Bucket=world.shop.bucket, Key=archive.key_for(bad_day), Body=gzip.compress(b"[1, 2, 3]")
    )

    result = world.invoke()  # raised AttributeError ('list' object has no attribute 'get')

    assert result["status"] in ("scaled", "decided"), result["reason"]
    assert result["forecast"] is not None
    # The window predict read, [anchor - lookback, anchor]: every step known but the bad day's.
    anchor = NOW - NOW % 300 - 2 * 300
    start = anchor - (HISTORY_STEPS_NEEDED + HORIZON_STEPS + LEVEL_STEPS) * 300
    window = world.history.window(start, anchor + 300)
    requests = window[Metric.REQUESTS].copy()
    stamps = window.timestamps()
    requests[(stamps >= bad_day) & (stamps < bad_day + DAY)] = np.nan
    # seed_history's backup ends one step after predict's CloudWatch window starts.
    requests[stamps == anchor + 300 - 26 * 3600] = np.nan
    assert result["inputs"]["history_steps"] == np.sum(np.isfinite(requests)) < len(window) - 100
    # Predict says so too, where the operator sees it.
    assert result["corrupt_history"] == [archive.key_for(bad_day)]
    assert emitted_metrics(capsys.readouterr().out)["CorruptHistoryObjects"] == 1


def test_retrain_counts_a_json_list_as_a_corrupt_history_object(retrain_world, capsys):  # noqa: F811
    world: RetrainWorld = retrain_world
    world.seed(RETRAIN_AT)
    archive = world.archive()
    old_day = MONDAY + 2 * DAY  # only in the backup: beyond what CloudWatch holds here
    world.session.client("s3").put_object(
        Bucket=world.shop.bucket, Key=archive.key_for(old_day), Body=gzip.compress(b'["not", "a", "day"]')
    )

    result = world.invoke()  # raised AttributeError before

    assert result["status"] == "promoted", result["reason"]
    assert result["history"]["corrupt_backups"] == [archive.key_for(old_day)]
    assert emitted_metrics(capsys.readouterr().out)["CorruptHistoryObjects"] == 1
