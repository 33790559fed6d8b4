"""Objects an attacker with write access to the model bucket can forge cheaply: forests
inside every documented bound that cost memory, `.npy` headers that lie, files that are two
formats at once, and JSON nested deeper than any parser's stack. Built with numpy in
milliseconds, so the tests that use them stay fast."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import numpy.typing as npt

from saleor_scaling.features import FEATURE_NAMES
from saleor_scaling.model import ModelMetadata

NODE_ARRAYS = ("children_left", "children_right", "feature", "threshold", "value", "missing_go_to_left")


def complete_tree(depth: int) -> dict[str, npt.NDArray[Any]]:
    """A full binary tree of `depth` (2^(depth+1) - 1 nodes), children after parents as the
    format requires: depth 16 is 131,071 nodes, inside MAX_NODES_PER_TREE."""
    nodes = 2 ** (depth + 1) - 1
    internal = 2**depth - 1
    index = np.arange(nodes)
    left = np.where(index < internal, 2 * index + 1, -1).astype(np.int32)
    right = np.where(index < internal, 2 * index + 2, -1).astype(np.int32)
    return {
        "children_left": left,
        "children_right": right,
        "feature": np.where(left >= 0, index % len(FEATURE_NAMES), -2).astype(np.int32),
        "threshold": np.where(left >= 0, 0.5, -2.0),
        "value": np.where(left >= 0, 0.0, 0.01 * (index % 7)),
        "missing_go_to_left": left >= 0,
    }


def forest_arrays(depths: list[int]) -> dict[str, npt.NDArray[Any]]:
    trees = [complete_tree(depth) for depth in depths]
    arrays = {name: np.concatenate([tree[name] for tree in trees]) for name in NODE_ARRAYS}
    arrays["node_count"] = np.array([len(tree["children_left"]) for tree in trees], dtype=np.int32)
    return arrays


def npz(arrays: dict[str, Any], stored: tuple[str, ...] = ()) -> bytes:
    """As `np.savez_compressed` writes it, except the arrays named in `stored`, which are
    stored uncompressed (random numbers do not compress; deflating them is slow)."""
    buffer = io.BytesIO()
    if not stored:
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            inner = io.BytesIO()
            np.save(inner, array, allow_pickle=False)
            method = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            archive.writestr(f"{name}.npy", inner.getvalue(), compress_type=method)
    return buffer.getvalue()


def forest_npz(depths: list[int]) -> bytes:
    return npz(forest_arrays(depths))


def one_wide_tree(trees: int) -> bytes:
    """The adversarial probe's model (171 KB for 100 trees): one tree of 131,071 nodes,
    depth 16, and stumps. Every bound holds; padding every tree to the widest one made
    it 100 x 131,071 slots."""
    return forest_npz([16] + [1] * (trees - 1))


def npy_declaring(shape: tuple[int, ...], dtype: str = "<i4", payload: bytes = b"") -> bytes:
    """An `.npy` whose header declares `shape` whatever the data that follows holds."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


def npz_with_raw_member(arrays: dict[str, Any], name: str, raw: bytes) -> bytes:
    """The arrays' npz with member `name`.npy replaced by `raw` bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, array in arrays.items():
            if member == name:
                archive.writestr(f"{member}.npy", raw)
            else:
                inner = io.BytesIO()
                np.save(inner, array, allow_pickle=False)
                archive.writestr(f"{member}.npy", inner.getvalue())
    return buffer.getvalue()


def npy_and_zip(blob: bytes) -> bytes:
    """A file that is an `.npy` to numpy (the magic at its start) and the same npz to
    zipfile (the central directory at its end; zipfile allows leading data)."""
    inner = io.BytesIO()
    np.save(inner, np.zeros(3), allow_pickle=False)
    return inner.getvalue() + blob


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def manifest_document(**fields: Any) -> dict[str, Any]:
    """A manifest document that passes every field check; `fields` replace or add fields."""
    return {
        "feature_names": list(FEATURE_NAMES),
        "horizon_steps": 4,
        "timezone": "UTC",
        "capacity_per_instance": 1000.0,
        "trained_at": "2023-11-27T00:00:00Z",
        "training_start": "2023-11-20T00:00:00Z",
        "training_end": "2023-11-27T00:00:00Z",
        "rows": 2000,
        "training_demand_max_per_minute": 5000.0,
        "sha256": "0" * 64,
        "size_bytes": 1,
        "model_key": "models/model.npz",
        "model_version_id": "",
        "capacity_learned": False,
        "scores": {},
        "headroom": {},
        "library_versions": {"numpy": np.__version__},
        "step_seconds": 300,
        "format_version": 2,
        **fields,
    }


def metadata_for(blob: bytes, **fields: Any) -> ModelMetadata:
    """A manifest that passes every field check and names `blob` (sha256 and size)."""
    document = manifest_document(**fields)
    return ModelMetadata.from_json(json.dumps(document)).with_artifact(blob, "models/model.npz")
