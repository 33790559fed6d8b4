"""Every operation the locustfile sends is valid against Saleor's real schema, usable by
an anonymous shopper, and found by enumerating loadtest.operations itself."""

from __future__ import annotations

import ast
import re

import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    parse,
    validate,
    visit,
)
from graphql.validation import NoDeprecatedCustomRule

from loadtest import operations
from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.loadtest.standin import RESTRICTED

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"
DOCUMENT_START = re.compile(r"^\s*(query|mutation|subscription|fragment)\b")


def module_documents() -> dict[str, str]:
    """Every module-level string of loadtest.operations that is a GraphQL document, by the
    constant's name: found by looking, so a new constant cannot escape the checks."""
    return {
        name: value
        for name, value in vars(operations).items()
        if isinstance(value, str) and DOCUMENT_START.match(value)
    }


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    return build_schema(SCHEMA.read_text())


def test_the_module_holds_the_operations():
    assert len(module_documents()) >= 13
    # each document is registered under its own operation name: the name Locust reports
    assert sorted(module_documents().values()) == sorted(operations.OPERATIONS.values())


@pytest.mark.parametrize("constant", sorted(module_documents()))
def test_operation_is_valid_against_saleors_schema(schema, constant):
    document = parse(module_documents()[constant])
    assert [error.message for error in validate(schema, document)] == []
    (definition,) = document.definitions
    assert isinstance(definition, OperationDefinitionNode)
    assert definition.name is not None
    assert operations.OPERATIONS[definition.name.value] == module_documents()[constant]


@pytest.mark.parametrize("name", sorted(operations.OPERATIONS))
def test_operation_uses_no_deprecated_field_but_the_allowed_ones(schema, name):
    deprecated = {
        match.group(1)
        for error in validate(schema, parse(operations.OPERATIONS[name]), [NoDeprecatedCustomRule])
        if (match := re.match(r"The field (\S+) is deprecated", error.message))
    }
    others = [
        error.message
        for error in validate(schema, parse(operations.OPERATIONS[name]), [NoDeprecatedCustomRule])
        if not error.message.startswith("The field ")
    ]
    assert deprecated <= operations.ALLOWED_DEPRECATIONS
    assert others == []


class _Fields(Visitor):
    def __init__(self, info: TypeInfo) -> None:
        super().__init__()
        self.info = info
        self.restricted: list[str] = []

    def enter_field(self, node: FieldNode, *_: object) -> None:
        definition = self.info.get_field_def()
        parent = self.info.get_parent_type()
        description = " ".join(((definition and definition.description) or "").split())
        if RESTRICTED.search(description):
            self.restricted.append(f"{getattr(parent, 'name', '?')}.{node.name.value}")


@pytest.mark.parametrize("name", sorted(set(operations.OPERATIONS) - {"Channels"}))
def test_an_anonymous_shopper_may_send_it(schema, name):
    """No field that Saleor keeps for staff or apps (its description says which); only
    the channel list, which discovery asks for and expects to be refused, is exempt."""
    info = TypeInfo(schema)
    fields = _Fields(info)
    visit(parse(operations.OPERATIONS[name]), TypeInfoVisitor(info, fields))
    assert fields.restricted == []


def test_the_channel_list_is_staff_only_as_discovery_expects(schema):
    info = TypeInfo(schema)
    fields = _Fields(info)
    visit(parse(operations.CHANNELS), TypeInfoVisitor(info, fields))
    assert "Query.channels" in fields.restricted


@pytest.mark.parametrize("name", sorted(operations.OPERATIONS))
def test_mutations_select_their_errors(name):
    (definition,) = parse(operations.OPERATIONS[name]).definitions
    assert isinstance(definition, OperationDefinitionNode)
    if definition.operation is not OperationType.MUTATION:
        return
    for root in definition.selection_set.selections:
        assert isinstance(root, FieldNode)
        assert root.selection_set is not None
        errors = [
            f for f in root.selection_set.selections if isinstance(f, FieldNode) and f.name.value == "errors"
        ]
        assert errors, f"{root.name.value} does not select errors"
        assert errors[0].selection_set is not None
        selected = {f.name.value for f in errors[0].selection_set.selections if isinstance(f, FieldNode)}
        assert {"field", "message", "code"} <= selected


def test_the_locustfile_sends_every_operation_and_only_those():
    """The locustfile names operations by string: each must be registered, and every
    registered one must be sent by some journey."""
    source = (REPO_ROOT / "loadtest" / "locustfile.py").read_text()
    sent = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("graphql", "graphql_outcome")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert sent == set(operations.OPERATIONS)
