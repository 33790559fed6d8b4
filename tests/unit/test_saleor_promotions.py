"""The promotions client against the real schema and a fake Saleor on 127.0.0.1 that
answers as the real one does, and as a hostile or broken one could."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from graphql import build_schema, parse, validate

from saleor_scaling.adapters.saleor import SaleorPromotions, check_api_url
from saleor_scaling.promotions import PROMOTIONS_QUERY, Promotion, PromotionsError
from tests.conftest import SHARED_DIR
from tests.fake_saleor import FakeSaleor

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"
NOW = 1_795_000_000  # 2026-11-18T11:06:40Z
TOKEN = "app-token-123"


# ---------------------------------------------------------------- the query against the schema


@pytest.fixture(scope="module")
def schema() -> Any:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is absent (set SALEOR_SHARED_DIR)")
    return build_schema(SCHEMA.read_text())


def test_the_query_validates_against_saleors_schema(schema):
    assert validate(schema, parse(PROMOTIONS_QUERY)) == []


def test_the_schema_check_would_catch_a_field_or_argument_that_does_not_exist(schema):
    for wrong in (
        PROMOTIONS_QUERY.replace("endDate }", "endsAt }"),
        PROMOTIONS_QUERY.replace("START_DATE", "STARTS"),
        PROMOTIONS_QUERY.replace("$from: DateTime!", "$from: Int!"),
    ):
        assert validate(schema, parse(wrong)) != []


def test_the_fields_read_have_the_types_the_parser_assumes(schema):
    promotion = schema.type_map["Promotion"].fields
    assert str(promotion["id"].type) == "ID!"
    assert str(promotion["name"].type) == "String!"
    assert str(promotion["startDate"].type) == "DateTime!"
    assert str(promotion["endDate"].type) == "DateTime"  # nullable: a promotion may never end
    info = schema.type_map["PageInfo"].fields
    assert (str(info["hasNextPage"].type), str(info["endCursor"].type)) == ("Boolean!", "String")


# ---------------------------------------------------------------- a fake Saleor


@pytest.fixture
def saleor() -> Iterator[Callable[..., FakeSaleor]]:
    servers: list[FakeSaleor] = []

    def start(answer: Callable[[int, dict[str, Any], Any], Any]) -> FakeSaleor:
        server = FakeSaleor(answer).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def node(number: int, *, name: str = "", end: str | None = "2026-11-28T00:00:00+00:00") -> dict[str, Any]:
    return {
        "id": f"UHJvbW90aW9uOj{number}",
        "name": name or f"Sale {number}",
        "startDate": "2026-11-27T06:00:00+00:00",
        "endDate": end,
    }


def page(nodes: list[dict[str, Any]], cursor: str | None = None) -> bytes:
    return json.dumps(
        {
            "data": {
                "promotions": {
                    "pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor},
                    "edges": [{"node": n, "cursor": f"c{k}"} for k, n in enumerate(nodes)],
                }
            }
        }
    ).encode()


def ok(body: bytes) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, body


def client(url: str, token: str = TOKEN, **options: Any) -> SaleorPromotions:
    return SaleorPromotions(url, lambda: token, **options)


def test_reads_every_page_with_the_token_and_the_window(saleor):
    def answer(number: int, variables: dict[str, Any], headers: Any) -> Any:
        if number == 1:
            return ok(page([node(1), node(2, name="Black Friday", end=None)], cursor="YXJyYXk6MQ=="))
        return ok(page([node(3, end="2026-11-27T08:30:00+01:00")]))

    server = saleor(answer)
    promotions = client(server.url).upcoming(NOW, 60)
    assert promotions == [
        Promotion("UHJvbW90aW9uOj1", "Sale 1", 1_795_759_200, 1_795_824_000),
        Promotion("UHJvbW90aW9uOj2", "Black Friday", 1_795_759_200, None),
        Promotion("UHJvbW90aW9uOj3", "Sale 3", 1_795_759_200, 1_795_764_600),
    ]
    (first, first_headers), (second, _) = server.requests
    assert first_headers["Authorization"] == "Bearer app-token-123"
    assert first["variables"] == {
        "first": 100,
        "after": None,
        "from": "2026-11-18T11:06:40Z",
        "until": "2027-01-17T11:06:40Z",
    }
    assert second["variables"]["after"] == "YXJyYXk6MQ=="
    assert first["query"] == PROMOTIONS_QUERY


def test_a_thousand_pages_are_refused_after_five_requests(saleor):
    server = saleor(lambda number, variables, headers: ok(page([node(number)], cursor=f"p{number}")))
    with pytest.raises(PromotionsError, match="more than 5 pages"):
        client(server.url).upcoming(NOW, 60)
    assert len(server.requests) == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"errors": [{"message": "You need one of the following permissions: MANAGE_DISCOUNTS"}]}',
         "refused the promotions query: You need one of the following permissions: MANAGE_DISCOUNTS"),
        (b'{"data": null, "errors": [{"message": "Cannot query field \\"endDate\\"\\n on type"}]}',
         'Cannot query field "endDate"  on type'),
        (b'{"data": {"promotions": null}}', "promotions is NoneType, not dict"),
        (b'{"data": {"promotions": {"edges": []}}}', "pageInfo is NoneType, not dict"),
        (page([{**node(1), "startDate": 1795759200}]), "startDate is int, not str"),
        (page([{**node(1), "name": None}]), "name is NoneType, not str"),
        (page([{k: v for k, v in node(1).items() if k != "id"}]), "id is NoneType, not str"),
        (page([{**node(1), "startDate": "2026-11-27T06:00:00"}]), "has no time zone"),
        (page([{**node(1), "endDate": "next friday"}]), "is not an ISO 8601 time"),
        (b'{"data": {"promotions": {"pageInfo": {"hasNextPage": "yes"}, "edges": []}}}',
         "hasNextPage is str, not bool"),
        (b'{"data": {"promotions": {"pageInfo": {"hasNextPage": true}, "edges": []}}}', "no endCursor"),
        (page([node(k) for k in range(101)]), "holds 101 promotions"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper than 8"),
        (b"<html>Bad gateway</html>", "unreadable"),
        (b'["data"]', "is a list, not an object"),
    ],
)  # fmt: skip
def test_an_answer_that_is_not_one_is_refused_with_why(saleor, body, message):
    server = saleor(lambda number, variables, headers: ok(body))
    with pytest.raises(PromotionsError, match=_literal(message)):
        client(server.url).upcoming(NOW, 60)


def _literal(text: str) -> str:
    return re.escape(text)


def test_a_huge_body_is_refused_on_its_length_and_on_what_it_holds(saleor):
    huge = b'{"data": "' + b"x" * 600_000 + b'"}'
    declared = saleor(lambda number, variables, headers: ok(huge))
    with pytest.raises(PromotionsError, match="600012 bytes, over 524288"):
        client(declared.url).upcoming(NOW, 60)

    def undeclared(handler: BaseHTTPRequestHandler) -> None:
        # No Content-Length: the body runs until the connection closes.
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for _ in range(100):
                handler.wfile.write(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass

    streamed = saleor(lambda number, variables, headers: undeclared)
    with pytest.raises(PromotionsError, match="over 524288 bytes"):
        client(streamed.url).upcoming(NOW, 60)


def test_a_server_that_trickles_is_cut_off_at_the_deadline(saleor):
    stop = threading.Event()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            while not stop.wait(0.01):
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    server = saleor(lambda number, variables, headers: trickle)
    ticks = iter(range(10_000))
    try:
        with pytest.raises(PromotionsError, match="reading the promotions took over 3 s"):
            # A clock that advances one second per read: the deadline, not the wall clock.
            client(server.url, deadline=3, clock=lambda: float(next(ticks))).upcoming(NOW, 60)
    finally:
        stop.set()


def test_the_deadline_holds_for_the_whole_read_not_each_page(saleor):
    server = saleor(lambda number, variables, headers: ok(page([node(number)], cursor=f"p{number}")))
    ticks = iter(range(10_000))
    with pytest.raises(PromotionsError, match="reading the promotions took over 3 s"):
        # One second per clock reading: each page alone is well inside 3 s, five are not.
        client(server.url, deadline=3, clock=lambda: float(next(ticks))).upcoming(NOW, 60)
    assert len(server.requests) < 5


@pytest.mark.parametrize(
    ("said", "reported"),
    [
        (f"Invalid token: Bearer {TOKEN}", "Invalid token: Bearer [token]"),
        # Where the message is cut (300 characters) inside the token, no part of it shows.
        ("x" * 295 + TOKEN, "x" * 295 + "[toke"),
    ],
)
def test_a_shop_that_echoes_the_token_does_not_put_it_in_the_report(saleor, said, reported):
    echo = json.dumps({"errors": [{"message": said}]}).encode()
    server = saleor(lambda number, variables, headers: ok(echo))
    with pytest.raises(PromotionsError) as refused:
        client(server.url).upcoming(NOW, 60)
    assert str(refused.value) == f"the shop refused the promotions query: {reported}"


@pytest.mark.parametrize(("status", "message"), [(401, "token was refused"), (500, "shop's API failed")])
def test_http_errors_say_which(saleor, status, message):
    server = saleor(lambda number, variables, headers: (status, {}, b'{"detail": "no"}'))
    with pytest.raises(PromotionsError, match=f"HTTP {status} from the Saleor API: the {message}"):
        client(server.url).upcoming(NOW, 60)


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(saleor):
    elsewhere = saleor(lambda number, variables, headers: ok(page([node(1)])))
    redirecting = saleor(lambda number, variables, headers: (307, {"Location": elsewhere.url}, b""))
    with pytest.raises(PromotionsError, match="redirect"):
        client(redirecting.url).upcoming(NOW, 60)
    assert elsewhere.requests == []


def test_no_server_is_a_fault_with_its_kind():
    server = FakeSaleor(lambda *args: ok(b"{}"))
    url = server.url
    server.server.server_close()  # the port is closed: connection refused
    with pytest.raises(PromotionsError, match="could not be reached: URLError"):
        client(url, timeout=2).upcoming(NOW, 60)


@pytest.mark.parametrize("token", ["", "  ", "a\r\nX-Injected: 1", "two words", "t" * 4097, "jeton-é"])
def test_a_token_that_is_not_one_header_word_is_refused_before_any_request(saleor, token):
    server = saleor(lambda number, variables, headers: ok(page([])))
    with pytest.raises(PromotionsError, match="promotions token"):
        client(server.url, token=token).upcoming(NOW, 60)
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example.com/graphql/",
        "http://localhost:8000/graphql/",
        "ftp://shop.example.com/graphql/",
        "https://user:pass@shop.example.com/graphql/",
        "https:///graphql/",
        "file:///etc/passwd",
    ],
)
def test_only_https_or_http_to_127_0_0_1(url):
    with pytest.raises(PromotionsError):
        check_api_url(url)


def test_https_and_local_http_are_accepted():
    assert check_api_url("https://shop.example.com/graphql/") == "https://shop.example.com/graphql/"
    assert check_api_url("http://127.0.0.1:8000/graphql/") == "http://127.0.0.1:8000/graphql/"
