"""A stand-in Saleor on 127.0.0.1, built from Saleor's real schema: every field answers
a plausible value of its type, so the locustfile's operations run for real (parsed,
validated and executed by graphql-core). One operation can be made to fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    graphql_sync,
)

SEARCH_FAILURE = "search backend unavailable"


def fake_value(parent: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    if info.field_name == "products" and args.get("search"):
        raise RuntimeError(SEARCH_FAILURE)
    if info.field_name == "errors":
        return []
    field_type = info.return_type
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLList):
        return [{} for _ in range(3)]
    if isinstance(field_type, GraphQLEnumType):
        return next(iter(field_type.values.values())).value
    name = getattr(field_type, "name", "")
    scalars: dict[str, Any] = {
        "ID": f"{info.parent_type.name}:{info.path.key}",
        "String": f"{info.field_name}-{info.path.prev.key if info.path.prev else 'x'}",
        "Int": 3,
        "Float": 9.5,
        "Boolean": info.field_name in {"isActive", "active"},
        "PositiveDecimal": 9.5,
        "UUID": "00000000-0000-0000-0000-000000000000",
    }
    if name in scalars:
        return scalars[name]
    if hasattr(field_type, "fields"):
        return {}
    return "x"  # other custom scalars (JSON, DateTime, ...)


def resolve_abstract(value: Any, info: GraphQLResolveInfo[Any], abstract_type: Any) -> str:
    return str(info.schema.get_possible_types(abstract_type)[0].name)


@contextmanager
def standin_saleor(schema_path: Path) -> Iterator[str]:
    schema: GraphQLSchema = build_schema(schema_path.read_text())
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            requests.append(str(body.get("operationName")))
            result = graphql_sync(
                schema,
                body["query"],
                variable_values=body.get("variables"),
                operation_name=body.get("operationName"),
                field_resolver=fake_value,
                type_resolver=resolve_abstract,
            )
            payload = result.formatted
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
