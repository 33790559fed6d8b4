"""Whoever can write the model bucket cannot run code or scale past the bounds: forged
manifests and objects against the real predict handler, the retrain handler and the
rollback command, on emulated AWS."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest

from saleor_scaling import registry_cli
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.local.emulator import create_shop
from saleor_scaling.settings import ModelLocation
from saleor_scaling.training import TrainingConfig, build_model
from tests.conftest import synthetic_history
from tests.forged_artifacts import nested_json, npy_and_zip
from tests.integration.conftest import MONDAY, emitted_metrics
from tests.integration.test_retrain_handler import (  # noqa: F401 (fixtures)
    RETRAIN_AT,
    long_history,
    retrain_world,
)

MANIFEST_KEY = "models/manifest.json"


pytestmark = pytest.mark.usefixtures("unbind_handler_loggers")


class Exploit:
    """Unpickling this writes a file (stdlib only, so any unpickler could run it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


def forge_pickle(s3: Any, bucket: str, manifest: dict[str, Any], marker: Path, format_version: int) -> None:
    """A consistent pair, as an attacker would write it: the malicious pickle, and a
    manifest that names it with its correct sha256 and size."""
    blob = pickle.dumps(Exploit(marker))
    key = "models/model.joblib" if format_version == 1 else "models/model.npz"
    version = s3.put_object(Bucket=bucket, Key=key, Body=blob).get("VersionId", "")
    forged = {
        **manifest,
        "model_key": key,
        "model_version_id": "" if version == "null" else version,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size_bytes": len(blob),
        "format_version": format_version,
    }
    if format_version == 1:  # what a manifest of the joblib era held
        forged.pop("training_demand_max_per_minute", None)
        forged["library_versions"] = {**forged["library_versions"], "joblib": "1.6.0"}
    write_manifest(s3, bucket, forged)


def write_manifest(s3: Any, bucket: str, manifest: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=json.dumps(manifest).encode())


def current_manifest(s3: Any, bucket: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=MANIFEST_KEY)["Body"].read())
    return document


def assert_fell_back_and_scaled_nothing(world: Any, result: dict[str, Any], output: str) -> None:
    assert result["status"] == "fallback", result
    assert "model unavailable" in result["reason"]
    metrics = emitted_metrics(output)
    assert metrics["FallbackUsed"] == 1
    assert "ScalingActions" not in metrics  # published only when the group is changed
    assert metrics.get("PredictErrors", 0) == 0
    described = world.describe()
    assert described["DesiredCapacity"] == 2
    assert described["MinSize"] == 1
    # The capacity held is what a fallback recommends: published, so that the no-decision
    # alarm stays quiet while the fallback alarm speaks.
    assert metrics["RecommendedCapacity"] == 2


@pytest.mark.parametrize("format_version", [1, 2])
def test_predict_never_unpickles_a_forged_model(world, capsys, tmp_path, format_version):
    s3, bucket = world.session.client("s3"), world.shop.bucket
    marker = tmp_path / "executed"
    forge_pickle(s3, bucket, current_manifest(s3, bucket), marker, format_version)

    result = world.invoke()

    assert_fell_back_and_scaled_nothing(world, result, capsys.readouterr().out)
    if format_version == 1:
        assert "format 1 (joblib pickle) is no longer loaded" in result["reason"]
    assert not marker.exists()


def _headroom(factor: float) -> dict[str, Any]:
    return {"basis": "busiest minute", "rows": 200, "band_edges": [], "factors": [[factor] * 50]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity_per_instance", 0.001),
        ("capacity_per_instance", 0),
        ("capacity_per_instance", -1),
        ("capacity_per_instance", "1000"),
        ("capacity_per_instance", math.nan),
        ("headroom", _headroom(1000.0)),
        ("headroom", _headroom(math.nan)),
        ("horizon_steps", 100_000),
        ("timezone", "Mars/Olympus"),
        ("model_key", "state/x"),
        ("model_key", "../x"),
        ("horizon_steps", True),
        ("capacity_per_instance", None),  # None: the field is left out
    ],
)
def test_each_bad_manifest_value_falls_back_and_scales_nothing(world, capsys, field, value):
    s3, bucket = world.session.client("s3"), world.shop.bucket
    manifest = current_manifest(s3, bucket)
    if value is None:
        del manifest[field]
    else:
        manifest[field] = value
    write_manifest(s3, bucket, manifest)

    result = world.invoke()

    assert_fell_back_and_scaled_nothing(world, result, capsys.readouterr().out)
    assert f"manifest field {field}" in result["reason"]


def test_the_untouched_manifest_still_scales(world):
    """The control: the same world with the published manifest does scale."""
    assert world.invoke()["status"] == "scaled"


def _small_manifest() -> dict[str, Any]:
    model = build_model(
        synthetic_history(MONDAY, 9), TrainingConfig(horizon_steps=4, n_estimators=5, max_depth=4), 1000.0
    )
    blob = model.ensemble.to_npz()
    document: dict[str, Any] = json.loads(model.metadata.with_artifact(blob, "models/model.npz").to_json())
    return document


@pytest.mark.parametrize("format_version", [1, 2])
def test_retrain_refuses_a_forged_champion_without_running_it(retrain_world, tmp_path, format_version):  # noqa: F811
    world = retrain_world
    world.seed(RETRAIN_AT)
    s3, bucket = world.session.client("s3"), world.shop.bucket
    marker = tmp_path / "executed"
    forge_pickle(s3, bucket, _small_manifest(), marker, format_version)

    result = world.invoke()

    assert result["champion"]["usable"] is False
    assert "format" in result["champion"]["error"] or "npz" in result["champion"]["error"]
    # An unusable champion is no standard: the baseline alone judges, and the challenger
    # replaces the forgery.
    assert result["status"] == "promoted", result["reason"]
    assert current_manifest(s3, bucket)["format_version"] == 2
    assert not marker.exists()


@pytest.mark.parametrize("format_version", [1, 2])
def test_rollback_refuses_a_forged_model_without_running_it(aws, tmp_path, capsys, format_version):
    shop = create_shop(aws)
    s3 = aws.client("s3")
    marker = tmp_path / "executed"
    forge_pickle(s3, shop.bucket, _small_manifest(), marker, format_version)
    # A good model promoted after the forgery: rolling back would return to the forgery.
    model = build_model(
        synthetic_history(MONDAY, 9), TrainingConfig(horizon_steps=4, n_estimators=5, max_depth=4), 1000.0
    )
    registry = S3ModelRegistry(s3, ModelLocation(bucket=shop.bucket))
    good = registry.publish(model.ensemble.to_npz(), model.metadata)

    assert registry_cli.main(["rollback", "--bucket", shop.bucket], client=s3) == 2

    assert "refused" in capsys.readouterr().err
    assert registry.current().model_version_id == good.model_version_id
    assert not marker.exists()


# Objects that used to escape the model error path (issue 21) -----------------------------


def _forge_model(s3: Any, bucket: str, manifest: dict[str, Any], blob: bytes) -> None:
    """A consistent pair around `blob`: the object, and a manifest naming it with its
    sha256 and size."""
    version = s3.put_object(Bucket=bucket, Key="models/model.npz", Body=blob).get("VersionId", "")
    write_manifest(
        s3,
        bucket,
        {
            **manifest,
            "model_version_id": "" if version == "null" else version,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size_bytes": len(blob),
        },
    )


def _bands(count: int, factor: float) -> dict[str, Any]:
    return {
        "basis": "busiest minute",
        "rows": 200,
        "band_edges": [float(edge) for edge in range(1, count)],
        "factors": [[factor] * 50 for _ in range(count)],
    }


def test_predict_falls_back_on_a_model_that_is_both_an_npy_and_a_zip(world, capsys):
    """np.load read the `.npy` in front and the `with` raised TypeError on every run."""
    s3, bucket = world.session.client("s3"), world.shop.bucket
    blob = s3.get_object(Bucket=bucket, Key="models/model.npz")["Body"].read()
    _forge_model(s3, bucket, current_manifest(s3, bucket), npy_and_zip(blob))

    result = world.invoke()

    assert_fell_back_and_scaled_nothing(world, result, capsys.readouterr().out)
    assert "npz" in result["reason"]


@pytest.mark.parametrize(("depth", "refusal"), [(100_000, "byte bound"), (20_000, "nested deeper than 8")])
def test_predict_falls_back_on_a_manifest_nested_thousands_deep(world, capsys, depth, refusal):
    """json.loads raised RecursionError on every run, and no state was written."""
    s3, bucket = world.session.client("s3"), world.shop.bucket
    s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=nested_json(depth))

    result = world.invoke()

    assert_fell_back_and_scaled_nothing(world, result, capsys.readouterr().out)
    assert refusal in result["reason"]
    assert world.invoke()["status"] == "duplicate"  # the state was written: one run per slot


@pytest.mark.parametrize(
    ("bands", "refusal"),
    [(5, "manifest field headroom holds 5 bands"), (2_000, "byte bound")],
)
def test_predict_falls_back_on_more_headroom_bands_than_training_fits(world, capsys, bands, refusal):
    """A table of many bands at the largest factor was accepted and scaled 2 -> 11."""
    s3, bucket = world.session.client("s3"), world.shop.bucket
    write_manifest(s3, bucket, {**current_manifest(s3, bucket), "headroom": _bands(bands, 10.0)})

    result = world.invoke()

    assert_fell_back_and_scaled_nothing(world, result, capsys.readouterr().out)
    assert refusal in result["reason"]


def test_predict_resets_a_state_nested_100000_deep_and_decides(world, capsys):
    """The state store raised RecursionError on every run, and the state was never reset."""
    s3 = world.session.client("s3")
    key = f"state/{world.shop.group_name}/predict-state.json"
    s3.put_object(Bucket=world.shop.bucket, Key=key, Body=nested_json(100_000))

    result = world.invoke()

    assert result["status"] == "scaled", result["reason"]
    assert "byte bound" in result["state_reset"] or "nested deeper" in result["state_reset"]
    assert emitted_metrics(capsys.readouterr().out)["StateResets"] == 1
    assert world.invoke()["status"] == "duplicate"


def test_predict_resets_a_state_nested_past_the_depth_bound(world):
    s3 = world.session.client("s3")
    key = f"state/{world.shop.group_name}/predict-state.json"
    s3.put_object(Bucket=world.shop.bucket, Key=key, Body=nested_json(50_000))

    result = world.invoke()

    assert result["status"] == "scaled", result["reason"]
    assert "nested deeper than 8 levels" in result["state_reset"]


@pytest.mark.parametrize("forgery", ["nested manifest", "npy and zip"])
def test_retrain_replaces_an_unreadable_champion(retrain_world, forgery):  # noqa: F811
    """Retrain failed with "the serving model is unchanged" every night: it never published
    the replacement that would end predict's fallback."""
    world = retrain_world
    world.seed(RETRAIN_AT)
    s3, bucket = world.session.client("s3"), world.shop.bucket
    if forgery == "nested manifest":
        s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=nested_json(20_000))
    else:
        manifest = _small_manifest()
        model = build_model(
            synthetic_history(MONDAY, 9), TrainingConfig(horizon_steps=4, n_estimators=5, max_depth=4), 1000.0
        )
        _forge_model(s3, bucket, manifest, npy_and_zip(model.ensemble.to_npz()))

    result = world.invoke()

    assert result["champion"]["usable"] is False
    assert result["status"] == "promoted", result["reason"]
    assert current_manifest(s3, bucket)["format_version"] == 2


def test_registry_cli_lists_an_unreadable_version_and_rolls_back_past_it(aws, capsys):
    """One such version anywhere in the history broke `list` and `rollback`, even `--to`."""
    shop = create_shop(aws)
    s3 = aws.client("s3")
    registry = S3ModelRegistry(s3, ModelLocation(bucket=shop.bucket))
    model = build_model(
        synthetic_history(MONDAY, 9), TrainingConfig(horizon_steps=4, n_estimators=5, max_depth=4), 1000.0
    )
    first = registry.publish(model.ensemble.to_npz(), model.metadata)
    s3.put_object(Bucket=shop.bucket, Key=MANIFEST_KEY, Body=nested_json(100_000))
    unreadable = s3.list_object_versions(Bucket=shop.bucket, Prefix=MANIFEST_KEY)["Versions"][0]["VersionId"]
    second = registry.publish(model.ensemble.to_npz(), model.metadata)

    assert registry_cli.main(["list", "--bucket", shop.bucket], client=s3) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 3
    assert unreadable in listing[1]
    assert "unreadable: " in listing[1]
    assert "byte bound" in listing[1]

    assert registry_cli.main(["rollback", "--bucket", shop.bucket, "--to", unreadable], client=s3) == 2
    assert f"manifest version {unreadable} is unreadable" in capsys.readouterr().err
    assert registry.current().model_version_id == second.model_version_id

    # A plain rollback skips the unreadable version and returns to the first model.
    assert registry_cli.main(["rollback", "--bucket", shop.bucket], client=s3) == 0
    assert registry.current().model_version_id == first.model_version_id


def test_retrain_keeps_the_serving_model_rather_than_publish_a_forest_predict_refuses(
    retrain_world,  # noqa: F811
    monkeypatch,
):
    """Predict refuses a forest over MAX_TOTAL_NODES; retrain must not publish one (it would
    put predict in fallback until a smaller one is trained). The bound is lowered here, as
    training a forest of two million nodes would take minutes."""
    from saleor_scaling import retrain_service

    monkeypatch.setattr(retrain_service, "MAX_TOTAL_NODES", 100)
    world = retrain_world
    world.seed(RETRAIN_AT)
    s3, bucket = world.session.client("s3"), world.shop.bucket

    result = world.invoke()

    assert result["status"] == "kept", result["reason"]
    assert "nodes, above the 100 that predict loads" in result["reason"]
    assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix=MANIFEST_KEY)
