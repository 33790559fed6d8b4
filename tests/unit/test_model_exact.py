"""Exact tests of the manifest checks and forecasts (`model.py`): every bound at its value
(accepted) and one past it (refused), with the numbers written down, so that a `<` for a
`<=` or a dropped check fails a test (`make mutate`)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from saleor_scaling.ensemble import TreeArrays, TreeEnsemble
from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.model import (
    PER_TREE_QUANTILE,
    Forecast,
    ForecastModel,
    ModelCompatibilityError,
    ModelError,
    ModelIntegrityError,
    ModelMetadata,
    ServingBounds,
    load_verified,
    manifest_summary,
    validate_for_serving,
)
from tests.forged_artifacts import forest_npz, manifest_document

SHA = "0123456789abcdef" * 4


def document(**fields: Any) -> dict[str, Any]:
    return manifest_document(**{"sha256": SHA, "library_versions": {"numpy": "2.0"}, **fields})


def parse(**fields: Any) -> ModelMetadata:
    return ModelMetadata.from_json(json.dumps(document(**fields)))


def refused(match: str, error: type[ModelError] = ModelIntegrityError, **fields: Any) -> None:
    with pytest.raises(error, match=match) as caught:
        parse(**fields)
    # Every refusal opens by naming what it refuses: the field, or the manifest itself.
    assert str(caught.value).startswith(("manifest field ", "model format 1 ", "model manifest "))


def band(value: float = 1.5) -> list[float]:
    return [value] * 50


# --- every bound at its value and one past it ---------------------------------------


def test_horizon_steps_1_and_26_are_accepted_0_and_27_refused():
    assert parse(horizon_steps=1).horizon_steps == 1
    assert parse(horizon_steps=26).horizon_steps == 26
    refused(r"horizon_steps 0 must be an int in \[1, 26\]", horizon_steps=0)
    refused(r"horizon_steps 27 must be an int in \[1, 26\]", horizon_steps=27)
    refused(r"horizon_steps 4\.0", horizon_steps=4.0)
    refused(r"horizon_steps True", horizon_steps=True)


def test_size_bytes_1_and_50_000_000_are_accepted_0_and_50_000_001_refused():
    assert parse(size_bytes=1).size_bytes == 1
    assert parse(size_bytes=50_000_000).size_bytes == 50_000_000
    refused(r"size_bytes 0 must be an int in \[1, 50000000\]", size_bytes=0)
    refused(r"size_bytes 50000001 must be an int in \[1, 50000000\]", size_bytes=50_000_001)
    refused(r"size_bytes '1'", size_bytes="1")
    refused(r"size_bytes True", size_bytes=True)


def test_rows_1_is_accepted_0_refused():
    assert parse(rows=1).rows == 1
    refused(r"rows 0 must be an int >= 1", rows=0)
    refused(r"rows 1\.0 must be an int >= 1", rows=1.0)
    refused(r"rows False", rows=False)


@pytest.mark.parametrize("name", ["capacity_per_instance", "training_demand_max_per_minute"])
def test_positive_numbers_just_above_0_are_accepted_0_and_non_finite_refused(name):
    assert getattr(parse(**{name: 5e-324}), name) == 5e-324
    one = parse(**{name: 1})
    assert getattr(one, name) == 1.0
    assert isinstance(getattr(one, name), float)
    for bad in (0.0, -1.0, "1000", True, None, float("inf"), float("nan"), float("-inf")):
        refused(f"manifest field {name} {bad!r} must be a", **{name: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["model_version_id", "trained_at", "training_start", "training_end"])
def test_texts_of_256_characters_are_accepted_257_refused(name):
    assert getattr(parse(**{name: "a" * 256}), name) == "a" * 256
    refused(f"manifest field {name} must be a string of at most 256 characters", **{name: "a" * 257})  # type: ignore[arg-type]
    refused(f"manifest field {name} must be a string", **{name: 7})  # type: ignore[arg-type]


def test_a_model_key_of_256_characters_is_accepted_257_refused():
    key = "models/" + "k" * 249
    assert len(key) == 256
    assert parse(model_key=key).model_key == key
    refused("model_key must be a string of at most 256", model_key=key + "k")
    refused("model_key must be a string", model_key=None)


@pytest.mark.parametrize(
    "key",
    [
        "state/x.npz",
        "/models/x",
        "models/../state/x",
        "models//x",
        "models/x/",
        "models/",
        "Models/x",
        "models",
    ],
)
def test_a_model_key_outside_models_is_refused(key):
    refused("must name an object under models/", model_key=key)


@pytest.mark.parametrize("key", ["models/a\\b", "models/a\nb", "models/a\x00b", "models/a\tb"])
def test_a_model_key_with_a_control_character_or_backslash_is_refused(key):
    refused("holds a control character or backslash", model_key=key)


def test_a_nested_model_key_under_models_is_accepted():
    assert parse(model_key="models/2026/12/model.npz").model_key == "models/2026/12/model.npz"
    assert parse(model_key="models/a..b").model_key == "models/a..b"


def test_timezones():
    assert parse(timezone="Europe/Warsaw").timezone == "Europe/Warsaw"
    refused("timezone 'Mars/Olympus' is not an IANA time zone", timezone="Mars/Olympus")
    refused("timezone '' is not an IANA time zone", timezone="")
    refused("timezone '../etc' is not an IANA time zone", timezone="../etc")
    refused("timezone must be a string of at most 256", timezone="A" * 257)
    refused("timezone must be a string", timezone=3)


def test_sha256_must_be_64_lowercase_hex_characters():
    assert parse(sha256="f" * 64).sha256 == "f" * 64
    message = "sha256 must be 64 lowercase hex characters"
    refused(message, sha256="f" * 63)
    refused(message, sha256="f" * 65)
    refused(message, sha256="F" * 64)
    refused(message, sha256="g" * 64)
    refused(message, sha256="X" * 64)
    refused(message, sha256=64)


def test_maps_of_32_entries_are_accepted_33_refused():
    scores = {f"s{index}": float(index) for index in range(32)}
    versions = {f"v{index}": "1" for index in range(32)}
    metadata = parse(scores=scores, library_versions=versions)
    assert len(metadata.scores) == 32
    assert len(metadata.library_versions) == 32
    refused("scores must be an object of at most 32 entries", scores={**scores, "x": 1.0})
    refused(
        "library_versions must be an object of at most 32 entries", library_versions={**versions, "x": "1"}
    )
    refused("scores must be an object", scores=[1.0])


def test_map_keys_and_versions_of_256_characters_are_accepted_257_refused():
    long = "k" * 256
    metadata = parse(scores={long: 1}, library_versions={long: "v" * 256})
    assert metadata.scores == {long: 1}
    assert metadata.library_versions == {long: "v" * 256}
    message = "must map strings of at most 256 characters to the expected type"
    refused(f"scores {message}", scores={long + "k": 1.0})
    refused(f"library_versions {message}", library_versions={long + "k": "1"})
    refused(f"library_versions {message}", library_versions={"numpy": "v" * 257})
    refused(f"library_versions {message}", library_versions={"numpy": 2})
    refused(f"scores {message}", scores={"mape": "1"})
    refused(f"scores {message}", scores={"mape": True})


def test_capacity_learned_must_be_a_bool():
    assert parse(capacity_learned=True).capacity_learned is True
    refused("capacity_learned must be true or false", capacity_learned=1)


def test_headroom_tables_of_4_bands_are_accepted_5_refused():
    four = {"basis": "busiest minute", "rows": 400, "band_edges": [10.0, 20.0, 30.0], "factors": [band()] * 4}
    assert parse(headroom=four).headroom == four
    five = {**four, "band_edges": [10.0, 20.0, 30.0, 40.0], "factors": [band()] * 5}
    refused("headroom holds 5 bands, at most 4 bands are fitted", headroom=five)


@pytest.mark.parametrize(
    "change",
    [
        {"basis": 1},
        {"rows": 1.0},
        {"rows": True},
        {"band_edges": "10"},
        {"band_edges": ["10"]},
        {"factors": "x"},
        {"factors": [band(), "x"]},
        {"factors": [band(), [*band()[:49], "1"]]},
    ],
)
def test_a_headroom_table_of_the_wrong_types_is_refused(change):
    table = {
        "basis": "busiest minute",
        "rows": 400,
        "band_edges": [10.0],
        "factors": [band(), band()],
        **change,
    }
    refused("headroom must hold a basis string, rows, band_edges and factors as numbers", headroom=table)


def test_a_headroom_table_the_table_itself_refuses_is_refused():
    table = {"basis": "busiest minute", "rows": 400, "band_edges": [10.0], "factors": [band(), band(-1.0)]}
    refused(
        r"manifest field headroom: headroom table is not valid: headroom factors must lie in \[0, 10\]",
        headroom=table,
    )
    refused("headroom must be an object", headroom=[])


def test_format_step_and_features():
    refused(
        "model format 1 \\(joblib pickle\\) is no longer loaded", ModelCompatibilityError, format_version=1
    )
    refused("format_version True != 2", ModelCompatibilityError, format_version=True)
    refused("format_version 3 != 2", ModelCompatibilityError, format_version=3)
    refused("format_version 2.0 != 2", ModelCompatibilityError, format_version=2.0)
    refused("step_seconds 60 != 300", ModelCompatibilityError, step_seconds=60)
    refused("step_seconds 300.0 != 300", ModelCompatibilityError, step_seconds=300.0)
    refused("feature_names differs", ModelCompatibilityError, feature_names=list(FEATURE_NAMES)[:-1])
    refused("feature_names must be a list of strings", feature_names=[*list(FEATURE_NAMES)[:-1], 1])
    refused("feature_names must be a list", feature_names="hour")


def test_missing_and_unknown_fields_are_named():
    data = document()
    del data["rows"]
    with pytest.raises(ModelIntegrityError, match=r"^manifest field rows is missing"):
        ModelMetadata.from_json(json.dumps(data))
    with pytest.raises(ModelIntegrityError, match=r"^manifest field zzz is not part of format 2"):
        ModelMetadata.from_json(json.dumps(document(zzz=1)))
    with pytest.raises(ModelIntegrityError, match=r"^model manifest is not a JSON object"):
        ModelMetadata.from_json("[]")
    with pytest.raises(ModelIntegrityError, match=r"^model manifest is not JSON within bounds"):
        ModelMetadata.from_json("{")


def test_a_manifest_of_65536_bytes_is_accepted_65537_refused():
    text = json.dumps(document())
    exact = text + " " * (65536 - len(text))
    assert len(exact.encode()) == 65536
    assert ModelMetadata.from_json(exact).rows == 2000
    assert ModelMetadata.from_json(exact.encode()).rows == 2000
    with pytest.raises(
        ModelIntegrityError,
        match=(
            r"^model manifest is not JSON within bounds: "
            r"model manifest is 65537 bytes, over the 65536 byte bound$"
        ),
    ):
        ModelMetadata.from_json(exact + " ")


def test_the_manifest_round_trips_through_its_json():
    metadata = parse(scores={"mape": 0.25}, model_version_id="v7")
    text = metadata.to_json()
    assert text.startswith('{\n  "capacity_learned": false,\n  "capacity_per_instance": 1000.0,')
    assert '"feature_names": [\n    "' in text
    assert ModelMetadata.from_json(text) == metadata


def test_with_artifact_names_the_blob():
    metadata = parse().with_artifact(b"abc", "models/x.npz", "v9")
    assert metadata.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (metadata.size_bytes, metadata.model_key, metadata.model_version_id) == (3, "models/x.npz", "v9")
    assert parse().with_artifact(b"", "models/y").model_version_id == ""


# --- the setting's bounds, and loading -----------------------------------------------


def test_capacity_250_and_4000_are_served_for_a_setting_of_1000_and_just_outside_refused():
    validate_for_serving(parse(capacity_per_instance=250.0), ServingBounds(1000.0))
    validate_for_serving(parse(capacity_per_instance=4000.0), ServingBounds(1000.0))
    with pytest.raises(
        ModelIntegrityError,
        match=(
            r"^manifest field capacity_per_instance 249\.99 is outside \[250, 4000\] "
            r"\(CAPACITY_PER_INSTANCE 1000"
        ),
    ):
        validate_for_serving(parse(capacity_per_instance=249.99), ServingBounds(1000.0))
    with pytest.raises(
        ModelIntegrityError, match=r"^manifest field capacity_per_instance 4000\.01 is outside \[250, 4000\]"
    ):
        validate_for_serving(parse(capacity_per_instance=4000.01), ServingBounds(1000.0))
    with pytest.raises(
        ModelIntegrityError, match=r"^manifest field horizon_steps 0 must be an int in \[1, 26\]$"
    ):
        validate_for_serving(ModelMetadata(**{**_fields(parse()), "horizon_steps": 0}), ServingBounds(1000.0))


def _fields(metadata: ModelMetadata) -> dict[str, Any]:
    return {name: getattr(metadata, name) for name in metadata.__dataclass_fields__}


BLOB = forest_npz([2, 1])


def test_a_blob_of_the_declared_size_and_digest_loads():
    metadata = parse().with_artifact(BLOB, "models/model.npz")
    model = load_verified(BLOB, metadata, ServingBounds(1000.0))
    assert model.ensemble.tree_count == 2
    assert model.ensemble.node_count == 10
    assert model.headroom is None


def test_a_blob_one_byte_off_or_with_another_digest_is_refused():
    metadata = parse().with_artifact(BLOB, "models/model.npz")
    with pytest.raises(
        ModelIntegrityError, match=f"^model is {len(BLOB) + 1} bytes, manifest field size_bytes says"
    ):
        load_verified(BLOB + b"\0", metadata, ServingBounds(1000.0))
    forged = BLOB[:-1] + bytes([BLOB[-1] ^ 1])
    with pytest.raises(
        ModelIntegrityError,
        match=r"^model sha256 [0-9a-f]{12}… does not match manifest field sha256 [0-9a-f]{12}…$",
    ):
        load_verified(forged, metadata, ServingBounds(1000.0))
    with pytest.raises(
        ModelIntegrityError,
        match=(
            r"^manifest field capacity_per_instance 1000 is outside \[25, 400\] "
            r"\(CAPACITY_PER_INSTANCE 100 / and x 4\)$"
        ),
    ):
        load_verified(BLOB, metadata, ServingBounds(100.0))


def test_arrays_that_are_no_forest_are_an_integrity_error():
    blob = b"PK\x03\x04" + b"\0" * 40
    metadata = parse().with_artifact(blob, "models/model.npz")
    with pytest.raises(ModelIntegrityError, match=r"^model arrays are not a servable forest"):
        load_verified(blob, metadata, ServingBounds(1000.0))


def test_any_exception_while_loading_is_an_integrity_error():
    with pytest.raises(ModelIntegrityError, match=r"^model cannot be loaded: AttributeError"):
        load_verified(BLOB, None, ServingBounds(1000.0))  # type: ignore[arg-type]
    with pytest.raises(
        ModelIntegrityError, match=r"^model manifest is not JSON within bounds: 'utf-8' codec"
    ):
        ModelMetadata.from_json(json.dumps(document()).encode("utf-16"))
    with pytest.raises(ModelIntegrityError, match=r"^model manifest is unreadable: TypeError"):
        ModelMetadata.from_json(None)  # type: ignore[arg-type]


# --- forecasts -----------------------------------------------------------------------


def stump(threshold: float, low: float, high: float) -> TreeArrays:
    """A split on feature 0 at `threshold`: `low` to the left, `high` to the right."""
    return TreeArrays(
        children_left=np.array([1, -1, -1], dtype=np.int32),
        children_right=np.array([2, -1, -1], dtype=np.int32),
        feature=np.array([0, -2, -2], dtype=np.int32),
        threshold=np.array([threshold, -2.0, -2.0]),
        value=np.array([0.0, low, high]),
        missing_go_to_left=np.array([True, False, False]),
    )


def leaf(value: float) -> TreeArrays:
    return TreeArrays(
        children_left=np.array([-1], dtype=np.int32),
        children_right=np.array([-1], dtype=np.int32),
        feature=np.array([-2], dtype=np.int32),
        threshold=np.array([-2.0]),
        value=np.array([value]),
        missing_go_to_left=np.array([False]),
    )


def model_of(trees: list[TreeArrays], headroom: dict[str, Any] | None = None) -> ForecastModel:
    return ForecastModel(TreeEnsemble(trees, len(FEATURE_NAMES)), parse(headroom=headroom or {}))


LEVEL = math.log1p(1000.0)


def test_a_forecast_without_a_table_sizes_for_the_per_tree_quantile():
    # Four trees whose log ratios give 1000 x e^r - 1 requests/min at level log1p(1000).
    trees = [leaf(math.log(v / 1001.0 + 1 / 1001.0)) for v in (1000.0, 1100.0, 1200.0, 1300.0)]
    forecast = model_of(trees).forecast(np.zeros(len(FEATURE_NAMES)), LEVEL, 0.9)
    assert forecast.demand_mean == pytest.approx(1150.0)
    assert forecast.demand_upper == pytest.approx(1270.0)  # 0.9 quantile of 1000..1300
    assert forecast.quantile == 0.9
    assert forecast.tree_spread == pytest.approx(150.0 / 1150.0)  # 1225 - 1075
    assert forecast.headroom_basis == PER_TREE_QUANTILE
    assert forecast.headroom == pytest.approx(1270.0 / 1150.0)


def test_the_upper_is_never_below_the_mean_without_a_table():
    trees = [leaf(math.log(v / 1001.0 + 1 / 1001.0)) for v in (1000.0, 1000.0, 1000.0, 5000.0)]
    forecast = model_of(trees).forecast(np.zeros(len(FEATURE_NAMES)), LEVEL, 0.1)
    assert forecast.demand_mean == pytest.approx(2000.0)
    assert forecast.demand_upper == pytest.approx(2000.0)  # the 0.1 quantile is 1000


def test_a_forecast_with_a_table_sizes_the_mean_by_its_band_factor():
    table = {
        "basis": "busiest minute",
        "rows": 400,
        "band_edges": [1500.0],
        "factors": [band(1.25), [2.0] * 50],
    }
    trees = [leaf(math.log(1001.0 / 1001.0)), leaf(math.log(1001.0 / 1001.0))]
    model = model_of(trees, table)
    forecast = model.forecast(np.zeros(len(FEATURE_NAMES)), LEVEL, 0.9)
    assert forecast.demand_mean == pytest.approx(1000.0)
    assert forecast.demand_upper == pytest.approx(1250.0)
    assert forecast.tree_spread == 0.0
    assert forecast.headroom_basis == "busiest minute"
    rows = model.forecast_rows(np.zeros((2, len(FEATURE_NAMES))), np.array([LEVEL, math.log1p(2000.0)]), 0.5)
    assert [round(f.demand_upper, 6) for f in rows] == [1250.0, 4000.0]
    assert list(
        np.round(model.forecast_many(np.zeros((2, len(FEATURE_NAMES))), np.array([LEVEL, 0.0])), 6)
    ) == [
        1000.0,
        0.0,
    ]


def test_rows_are_forecast_each_by_its_own_features():
    model = model_of([stump(0.5, 0.0, math.log(2.0))])
    features = np.zeros((2, len(FEATURE_NAMES)))
    features[1, 0] = 1.0
    means = model.forecast_many(features, np.array([LEVEL, LEVEL]))
    assert list(np.round(means, 6)) == [1000.0, 2001.0]


def test_a_zero_mean_has_no_spread_and_a_headroom_of_1():
    forecast = model_of([leaf(0.0), leaf(0.5)]).forecast(np.zeros(len(FEATURE_NAMES)), 0.0, 0.9)
    assert forecast.demand_mean == pytest.approx((math.exp(0.5) - 1) / 2)
    zero = model_of([leaf(0.0)]).forecast(np.zeros(len(FEATURE_NAMES)), 0.0, 0.9)
    assert forecast.tree_spread == pytest.approx(1.0)  # quartiles 0.25 and 0.75 of the range, over the mean
    assert (zero.demand_mean, zero.tree_spread, zero.headroom) == (0.0, 0.0, 1.0)
    assert Forecast(0.0, 5.0, 0.9, 0.0).headroom == 1.0
    assert Forecast(2.0, 5.0, 0.9, 0.0).headroom == 2.5


def test_a_table_that_cannot_be_built_is_an_integrity_error():
    metadata = ModelMetadata(**{**_fields(parse()), "headroom": {"basis": "x"}})
    with pytest.raises(ModelIntegrityError, match=r"^manifest field headroom: headroom table is not valid"):
        ForecastModel(TreeEnsemble([leaf(0.0)], len(FEATURE_NAMES)), metadata)


def test_the_summary_names_these_fields():
    metadata = parse(model_version_id="v3", rows=2016).with_artifact(b"abc", "models/m.npz", "v3")
    assert manifest_summary(metadata) == {
        "model_version_id": "v3",
        "trained_at": "2023-11-27T00:00:00Z",
        "horizon_steps": 4,
        "capacity_per_instance": 1000.0,
        "rows": 2016,
        "training_end": "2023-11-27T00:00:00Z",
        "size_bytes": 3,
        "sha256": "ba7816bf8f01",
        "headroom_basis": "per-tree quantile",
        "stage": "full",
    }
    table = {"basis": "step mean", "rows": 400, "band_edges": [], "factors": [band()]}
    assert manifest_summary(parse(headroom=table))["headroom_basis"] == "step mean"


def test_each_row_gets_its_own_per_tree_quantile():
    trees = [stump(0.5, 0.0, math.log(2.0)), stump(0.5, 0.0, math.log(3.0))]
    features = np.zeros((2, len(FEATURE_NAMES)))
    features[1, 0] = 1.0
    rows = model_of(trees).forecast_rows(features, np.array([LEVEL, LEVEL]), 1.0)
    assert [round(f.demand_upper, 6) for f in rows] == [1000.0, 3002.0]
    assert [round(f.demand_mean, 6) for f in rows] == [1000.0, 2501.5]


def test_library_versions_names_the_four_libraries():
    import platform

    import scipy
    import sklearn

    from saleor_scaling.model import library_versions

    assert library_versions() == {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
