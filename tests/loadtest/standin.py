"""A stand-in Saleor on 127.0.0.1, built from Saleor's real schema: graphql-core parses,
validates and executes every operation the locustfile sends, and each field answers a
plausible value of its type. What it copies from the real shop, so that the smoke run
exercises the same paths:

* a field whose description says it requires permissions (``Requires one of the following
  permissions: ...``, not the ``... to include the unpublished items`` kind) is refused to
  a caller without an Authorization header, with Saleor's PermissionDenied error; so the
  anonymous channel list is refused and discovery must fall back;
* a bearer token EXPIRED_TOKEN is refused as Saleor refuses an expired staff token: HTTP
  200, ``Signature has expired`` (``ExpiredSignatureError``), no data;
* a bearer token that is not a JWT (no two dots) and not one of `app_tokens` (a mistyped or
  deleted app token) is looked up as an app token, not found, and the request goes on
  anonymously, as in Saleor: the channel list is refused with PermissionDenied;
* an authorised channel list is the stand-in's `channels` (by slug, as Saleor orders it),
  and ``channel(slug:)`` answers a slug among them, null for any other;
* a channel in `empty_channels` sells nothing: its product lists are empty;
* checkoutComplete without payment answers CHECKOUT_NOT_FULLY_PAID in its `errors`;
* a document that does not validate answers HTTP 400.

One failure is injected on purpose: a product search raises SEARCH_FAILURE.

Run it by hand to try the web UI without AWS:
``.venv/bin/python -m tests.loadtest.standin [PORT]`` (serves http://127.0.0.1:PORT).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    graphql_sync,
)

SEARCH_FAILURE = "search backend unavailable"
EXPIRED_TOKEN = "expired-staff-token"
"""A bearer token the stand-in refuses as expired."""
EXPIRED_ANSWER = {
    "errors": [
        {"message": "Signature has expired", "extensions": {"exception": {"code": "ExpiredSignatureError"}}}
    ]
}
"""What Saleor answers (HTTP 200) to a request carrying an expired JWT."""
NOT_PAID = "The authorized amount does not cover the checkout's total amount."
TRUE_FIELDS = {
    "isActive",
    "active",
    "isAvailable",
    "isAvailableForPurchase",
    "hasNextPage",
    "isShippingRequired",
}
RESTRICTED = re.compile(
    r"Requires (one of )?the following permissions: [A-Z_, ]+\.|Requires staff permissions"
)


DEFAULT_CHANNELS = ("channel-pln", "channel-usd", "default-channel")
"""Saleor's demo channels, in the order its channel list gives them."""


APP_TOKEN = "app-token"
"""The app token the stand-in knows (an app of no permissions: enough for the channel list)."""


@dataclass
class Caller:
    authorized: bool
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    empty_channels: tuple[str, ...] = ()


@dataclass
class StandIn:
    url: str
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    """What the channel list answers an authorised caller (all active)."""
    empty_channels: tuple[str, ...] = ()
    """Channels whose product lists are empty (a channel that sells nothing)."""
    app_tokens: tuple[str, ...] = (APP_TOKEN,)
    operations: Counter[str] = field(default_factory=Counter)
    """Requests received, by operationName."""
    tokens: Counter[str] = field(default_factory=Counter)
    """Bearer tokens received, by operationName: which requests carried one."""


def restricted(info: GraphQLResolveInfo[Caller]) -> str | None:
    """The permission note of a field an anonymous caller may not read, if any."""
    definition = info.parent_type.fields[info.field_name]
    match = RESTRICTED.search(" ".join((definition.description or "").split()))
    return match.group(0) if match else None


def fake_value(parent: Any, info: GraphQLResolveInfo[Caller], **args: Any) -> Any:
    note = restricted(info)
    if note and not info.context.authorized:
        raise GraphQLError(
            f"To access this path, you need one of the following permissions: {note}",
            extensions={"exception": {"code": "PermissionDenied"}},
        )
    if isinstance(parent, dict) and info.field_name in parent:
        return parent[info.field_name]
    if info.parent_type.name == "Query" and info.field_name == "channels":
        return [{"slug": slug, "isActive": True} for slug in info.context.channels]
    if info.parent_type.name == "Query" and info.field_name == "channel" and args.get("slug"):
        return {"slug": args["slug"]} if args["slug"] in info.context.channels else None
    if info.field_name == "products" and args.get("channel") in info.context.empty_channels:
        return {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}, "totalCount": 0}
    if info.field_name == "products" and args.get("search"):
        raise GraphQLError(SEARCH_FAILURE)
    if info.field_name == "errors":
        if info.parent_type.name == "CheckoutComplete":
            return [{"field": None, "message": NOT_PAID, "code": "CHECKOUT_NOT_FULLY_PAID"}]
        return []
    if info.parent_type.name == "CheckoutComplete" and info.field_name == "order":
        return None
    field_type = info.return_type
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLList):
        return [{} for _ in range(3)]
    if isinstance(field_type, GraphQLEnumType):
        return next(iter(field_type.values.values())).value
    name = getattr(field_type, "name", "")
    scalars: dict[str, Any] = {
        "ID": f"{info.parent_type.name}:1",
        "String": f"{info.field_name}-{info.path.prev.key if info.path.prev else 'x'}",
        "Int": 3,
        "Float": 9.5,
        "Boolean": info.field_name in TRUE_FIELDS,
        "PositiveDecimal": 9.5,
        "UUID": "00000000-0000-0000-0000-000000000000",
    }
    if name in scalars:
        return scalars[name]
    if hasattr(field_type, "fields"):
        return {}
    return "x"  # other custom scalars (JSON, DateTime, ...)


def resolve_abstract(value: Any, info: GraphQLResolveInfo[Caller], abstract_type: Any) -> str:
    return str(info.schema.get_possible_types(abstract_type)[0].name)


def handler_for(schema: GraphQLSchema, standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            operation = str(body.get("operationName"))
            standin.operations[operation] += 1
            authorization = self.headers.get("Authorization") or ""
            if authorization:
                standin.tokens[operation] += 1
            token = authorization.removeprefix("Bearer ")
            if token == EXPIRED_TOKEN:
                self.answer(200, EXPIRED_ANSWER)
                return
            # Saleor reads a bearer that is not a JWT as an app token; one it does not know
            # authorises nothing, with no error of its own.
            authorized = token in standin.app_tokens or token.count(".") == 2
            result = graphql_sync(
                schema,
                body["query"],
                variable_values=body.get("variables"),
                operation_name=body.get("operationName"),
                context_value=Caller(authorized, standin.channels, standin.empty_channels),
                field_resolver=fake_value,
                type_resolver=resolve_abstract,
            )
            self.answer(400 if result.data is None and result.errors else 200, result.formatted)

        def answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@lru_cache(maxsize=2)
def load_schema(schema_path: Path) -> GraphQLSchema:
    return build_schema(schema_path.read_text())


@contextmanager
def standin_saleor(
    schema_path: Path,
    port: int = 0,
    channels: tuple[str, ...] = DEFAULT_CHANNELS,
    empty_channels: tuple[str, ...] = (),
) -> Iterator[StandIn]:
    """Serve the stand-in on 127.0.0.1 (a free port unless one is given) in a thread."""
    schema = load_schema(schema_path)
    standin = StandIn(url="", channels=channels, empty_channels=empty_channels)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(schema, standin))
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    from saleor_scaling.backtest.traces import shared_dir

    with standin_saleor(
        shared_dir() / "saleor" / "schema.graphql", int(sys.argv[1]) if sys.argv[1:] else 8000
    ) as s:
        print(f"stand-in Saleor on {s.url}/graphql/ (Ctrl-C to stop)")
        threading.Event().wait()
