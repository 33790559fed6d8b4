"""The teardown the docs describe is the templates' own: every resource that a stack
deletion keeps (DeletionPolicy: Retain) is named in docs/infrastructure.md's and the
README's Teardown sections, and what `sam deploy` does with parameters left out is said
the way SAM CLI does it (UsePreviousValue) in both."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT
from tests.infra.cfn import INFRA, load


def retained() -> set[str]:
    names = set()
    for path in [REPO_ROOT / "template.yaml", *sorted(INFRA.glob("*.yaml"))]:
        for name, resource in load(path)["Resources"].items():
            if resource.get("DeletionPolicy") == "Retain":
                names.add(name)
    return names


def section(path: str, title: str) -> str:
    text = (REPO_ROOT / path).read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, (path, title)
    return " ".join(match.group(1).split())


def test_every_retained_resource_is_named_in_both_teardowns() -> None:
    # Before: docs/infrastructure.md said two buckets and the README one; the template keeps three.
    assert retained() == {"ModelBucket", "ModelAccessLogBucket", "AccessLogBucket"}
    for path in ("docs/infrastructure.md", "README.md"):
        teardown = section(path, "Teardown")
        for name in retained():
            assert f"`{name}`" in teardown, (path, name)
        assert "Three buckets are **retained**" in teardown, path


def test_parameters_left_out_keep_their_previous_values() -> None:
    # Before: "parameters you leave out go back to their defaults", against the README and SAM CLI.
    teardown = section("docs/infrastructure.md", "Teardown")
    assert "go back to their defaults" not in teardown
    assert "keep their previous values (SAM CLI sends `UsePreviousValue` for them)" in teardown
