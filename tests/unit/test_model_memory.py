"""A model object inside every documented bound loads within predict's memory, and one that
would not is refused (ModelError) from what it declares, before anything is allocated.

Each case runs in a subprocess whose address space is limited (RLIMIT_AS) to predict's
MemorySize on top of the subprocess's own baseline (the interpreter with numpy, sklearn
and this package imported, measured there first): an allocation past it is a MemoryError
there, as the Lambda would be killed, instead of this machine swapping."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from typing import Any

import numpy as np
import pytest

from saleor_scaling.ensemble import MAX_NODES_PER_TREE, MAX_TOTAL_NODES
from saleor_scaling.model import MAX_MODEL_BYTES
from tests.conftest import REPO_ROOT
from tests.forged_artifacts import forest_arrays, npy_declaring, npz, npz_with_raw_member, one_wide_tree

PREDICT_MEMORY_MB = 512
"""template.yaml: the predict function's MemorySize."""

CHILD = r"""
import gc, json, resource, sys
import numpy, sklearn.ensemble
from saleor_scaling.model import ModelError, ServingBounds, load_verified
from tests.forged_artifacts import metadata_for

def status(field):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

budget = int(sys.argv[1]) << 20
cases = json.loads(sys.argv[2])
baseline = status("VmSize")
resource.setrlimit(resource.RLIMIT_AS, (baseline + budget, resource.RLIM_INFINITY))
report = {"baseline_mb": baseline >> 20}
for case, paths in cases.items():
    held, outcomes = [], []
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the peak resident size, to the current one
    resident = status("VmRSS")
    for path in paths:  # each model stays held while the next loads: predict's cache does that
        try:
            with open(path, "rb") as source:
                blob = source.read()
            model = load_verified(blob, metadata_for(blob), ServingBounds(1000.0))
            del blob
            held.append(model)
            outcomes.append(["loaded", model.ensemble.tree_count, model.ensemble.node_count])
        except ModelError as error:
            outcomes.append(["ModelError", str(error)])
        except BaseException as error:
            outcomes.append([type(error).__name__, str(error)[:200]])
    report[case] = outcomes
    report[case + " peak MB"] = (status("VmHWM") - resident) >> 20
    del held
    gc.collect()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case below, loaded in one subprocess (one interpreter start for all: importing
    sklearn is most of the time), each case's models released before the next."""
    folder = tmp_path_factory.mktemp("models")
    largest = _largest_admitted_forest()
    directory = _zip_directory_of(1_000_000)
    blobs = {
        "one wide tree of 100": [one_wide_tree(100)],
        "one wide tree of 500": [one_wide_tree(500)],
        "two of the largest": [largest, largest],
        "1e11 elements": [
            npz_with_raw_member(forest_arrays([3]), "value", npy_declaring((10**11,), "<f8", b"\0" * 120))
        ],
        "a million directory entries": [directory],
    }
    cases: dict[str, list[str]] = {}
    for number, (case, case_blobs) in enumerate(blobs.items()):
        cases[case] = []
        for copy, blob in enumerate(case_blobs):
            path = folder / f"case-{number}-{copy}.npz"
            if not any(earlier == blob for earlier in case_blobs[:copy]):
                path.write_bytes(blob)
            else:
                path = folder / f"case-{number}-0.npz"
            cases[case].append(str(path))
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    finished = subprocess.run(
        [sys.executable, "-c", CHILD, str(PREDICT_MEMORY_MB), json.dumps(cases)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    report: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    report["sizes"] = {case: [len(blob) for blob in case_blobs] for case, case_blobs in blobs.items()}
    print(report)
    return report


def _largest_admitted_forest() -> bytes:
    """MAX_TOTAL_NODES nodes in trees of the widest admitted shape, with random thresholds
    and values so that compression cannot shrink the object (the worst the bounds allow)."""
    depth = 16
    assert 2 ** (depth + 1) - 1 <= MAX_NODES_PER_TREE
    arrays = forest_arrays([depth] * (MAX_TOTAL_NODES // (2 ** (depth + 1) - 1)))
    rng = np.random.default_rng(1)
    internal = arrays["children_left"] >= 0
    arrays["threshold"] = np.where(internal, rng.random(len(internal)), -2.0)
    arrays["value"] = rng.normal(size=len(internal))
    return npz(arrays, stored=("threshold", "value"))


@pytest.mark.parametrize("trees", [100, 500])
def test_the_probes_forest_of_one_wide_tree_loads_within_predicts_memory(outcomes, trees):
    """171 KB, every bound held: padding every tree to the widest made it 924 MB (100
    trees) and 2.8 GB (500)."""
    assert len(one_wide_tree(trees)) < 1_000_000
    assert outcomes[f"one wide tree of {trees}"] == [["loaded", trees, 131_071 + 3 * (trees - 1)]]


def test_two_of_the_largest_forests_the_bounds_admit_load_within_predicts_memory(outcomes):
    """Predict holds the model it served while it loads a new one."""
    assert max(outcomes["sizes"]["two of the largest"]) <= MAX_MODEL_BYTES
    loaded = outcomes["two of the largest"]
    assert [outcome[0] for outcome in loaded] == ["loaded", "loaded"], loaded
    assert loaded[0][2] > 0.9 * MAX_TOTAL_NODES


def test_an_npy_header_declaring_1e11_elements_is_refused_before_allocating(outcomes):
    """numpy allocates what the header declares before reading a byte (a MemoryError)."""
    [(kind, message)] = outcomes["1e11 elements"]
    assert kind == "ModelError"
    assert "value declares 100000000000 entries" in message


def _zip_directory_of(entries: int) -> bytes:
    """One stored member and a central directory that lists it `entries` times: 47 MB of
    directory for a million entries, inside MAX_MODEL_BYTES, that zipfile turns into a
    million objects before anything can look at the names."""
    name = b"x"
    data = b"\0"
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, 1, 1, len(name), 0) + name + data
    central = (
        struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, 1, 1, len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    directory = central * entries
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 7, 7, len(directory), len(local), 0)
    return local + directory + end


def test_a_zip_directory_of_a_million_entries_is_refused_before_it_is_parsed(outcomes):
    """zipfile made a million objects of it first: 341 MB and 14 s here."""
    assert outcomes["sizes"]["a million directory entries"] == [47_000_054]
    assert MAX_MODEL_BYTES >= 47_000_054  # inside the object bound
    [(kind, message)] = outcomes["a million directory entries"]
    assert kind == "ModelError"
    assert "directory" in message
    # The object itself (47 MB) is read; its directory is never parsed.
    assert outcomes["a million directory entries peak MB"] < 100
