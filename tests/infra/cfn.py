"""Reading the Saleor tier's templates as CloudFormation would: tags resolved to their
long form (Ref, Fn::Sub, ...), and Fn::Sub strings rendered with given values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

from tests.conftest import REPO_ROOT

INFRA = REPO_ROOT / "infra-cfn"
CHILDREN = ("network", "security", "data", "app", "monitoring")

_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")


def load(path: Path) -> dict[str, Any]:
    """A template as plain dicts and lists (cfn-lint's loader, its node types dropped)."""
    loaded: dict[str, Any] = json.loads(json.dumps(load_cfn_yaml(str(path))))
    return loaded


def template(name: str) -> dict[str, Any]:
    return load(INFRA / f"{name}.yaml")


def render_sub(text: str, values: dict[str, str]) -> str:
    """Fn::Sub: ${Name} from `values` (KeyError if missing), ${!Literal} kept as ${Literal}."""

    def replace(match: re.Match[str]) -> str:
        literal, name = match.groups()
        return "${" + name + "}" if literal else values[name]

    return _SUB_VARIABLE.sub(replace, text)


def sub_variables(text: str) -> set[str]:
    """The names an Fn::Sub string substitutes (${!...} excluded)."""
    return {name for literal, name in _SUB_VARIABLE.findall(text) if not literal}


def references(node: Any) -> list[tuple[str, str]]:
    """(kind, target) of every Ref and Fn::GetAtt under `node`; GetAtt as 'Resource.Attribute'."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.append(("Ref", value))
            elif key == "Fn::GetAtt":
                found.append(("GetAtt", value if isinstance(value, str) else ".".join(value)))
            found.extend(references(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(references(value))
    return found


def nested_stacks(root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> resource of every AWS::CloudFormation::Stack in a root template."""
    return {
        logical_id: resource
        for logical_id, resource in root.get("Resources", {}).items()
        if resource.get("Type") == "AWS::CloudFormation::Stack"
    }
