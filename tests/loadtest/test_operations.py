"""Every operation the locustfile sends is valid against Saleor's real schema."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate

from loadtest import operations
from tests.conftest import REPO_ROOT, SHARED_DIR

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"


@pytest.fixture(scope="module")
def schema():
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    return build_schema(SCHEMA.read_text())


@pytest.mark.parametrize("name", sorted(operations.OPERATIONS))
def test_operation_is_valid_against_saleors_schema(schema, name):
    document = parse(operations.OPERATIONS[name])
    assert [error.message for error in validate(schema, document)] == []
    (definition,) = document.definitions
    assert isinstance(definition, OperationDefinitionNode)
    assert definition.name is not None
    assert definition.name.value == name  # the name Locust reports is the operation's own


def test_every_operation_the_locustfile_sends_is_registered():
    """The locustfile names operations by string; each must be a registered document, and
    every registered document must be sent by some journey."""
    source = (REPO_ROOT / "loadtest" / "locustfile.py").read_text()
    sent = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "graphql"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert sent == set(operations.OPERATIONS)


def test_module_holds_no_unregistered_document():
    documents = {
        value
        for name, value in vars(operations).items()
        if name.isupper() and isinstance(value, str) and "{" in value
    }
    assert documents == set(operations.OPERATIONS.values())
    assert Path(operations.__file__).parent.name == "loadtest"
