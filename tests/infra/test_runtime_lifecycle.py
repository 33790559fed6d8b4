"""The Lambda runtime must not age out under a running deployment unannounced.

AWS deprecates a runtime, then blocks creating and then updating functions on it; a stack
that cannot be updated cannot be fixed. cfn-lint ships AWS's dates (its
LmbdRuntimeLifecycle.json, updated with each release we pin), so CI fails here 90 days
before the deprecation of the runtime template.yaml uses: the next migration (3.11 -> 3.13
was issue 16) starts from a red build, not from an AWS e-mail.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from importlib import resources
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.infra.cfn import load

WARNING_DAYS = 90


def lifecycle() -> dict[str, dict[str, str]]:
    text = resources.files("cfnlint.data.AdditionalSpecs").joinpath("LmbdRuntimeLifecycle.json").read_text()
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def days_of_support_left(runtime: str, today: date, table: dict[str, dict[str, str]]) -> int:
    """Days from `today` to the runtime's deprecation date (negative once past it)."""
    if runtime not in table:
        raise LookupError(f"{runtime} is not in cfn-lint's runtime lifecycle data")
    return (date.fromisoformat(table[runtime]["deprecated"]) - today).days


def runtimes_in_template() -> dict[str, str]:
    """Where each runtime is named: the functions' (Globals or their own) and the layers'."""
    template: dict[str, Any] = load(REPO_ROOT / "template.yaml")
    found = {"Globals.Function.Runtime": template["Globals"]["Function"]["Runtime"]}
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and "Runtime" in properties:
            found[f"{name}.Runtime"] = properties["Runtime"]
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            for index, runtime in enumerate(properties["CompatibleRuntimes"]):
                found[f"{name}.CompatibleRuntimes[{index}]"] = runtime
    return found


def test_the_functions_and_layers_name_one_runtime() -> None:
    # The layers' .pyc and wheels are built for exactly one Python: a layer that claims
    # another runtime than the functions' would load bytecode of the wrong magic number.
    found = runtimes_in_template()
    assert len(set(found.values())) == 1, found


@pytest.mark.parametrize(("where", "runtime"), sorted(runtimes_in_template().items()))
def test_runtime_is_supported_for_more_than_90_days(where: str, runtime: str) -> None:
    table = lifecycle()
    left = days_of_support_left(runtime, date.today(), table)
    successor = table[runtime].get("successor", "its successor")
    assert left > WARNING_DAYS, (
        f"{where}: {runtime} is deprecated by Lambda in {left} days "
        f"({table[runtime]['deprecated']}); move to {successor} "
        "(template.yaml, the layers' Makefiles and pins, pyproject.toml, the Makefile's Python)"
    )


def test_the_warning_fires_90_days_before_deprecation() -> None:
    # The dates the issue quoted for python3.11, against which the rule is checked.
    table = lifecycle()
    assert table["python3.11"]["deprecated"] == "2027-06-30"
    deprecated = date(2027, 6, 30)

    def left(today: date) -> int:
        return days_of_support_left("python3.11", today, table)

    assert left(date(2026, 12, 1)) == 211
    assert left(deprecated - timedelta(days=WARNING_DAYS + 1)) > WARNING_DAYS
    assert left(deprecated - timedelta(days=WARNING_DAYS)) <= WARNING_DAYS
    assert left(deprecated + timedelta(days=1)) < 0
    with pytest.raises(LookupError):
        days_of_support_left("python9.99", date(2026, 12, 1), table)
