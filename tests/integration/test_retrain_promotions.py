"""The retrain handler, in emulated AWS, proposing events from a fake Saleor's promotions
on 127.0.0.1: the token read from Secrets Manager, the proposals written where the CLI
reads them; a refused token or a missing secret is a warning, never a failed night."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fake_saleor import FakeSaleor
from tests.integration.test_retrain_handler import (  # noqa: F401 (fixtures)
    RETRAIN_AT,
    RetrainWorld,
    long_history,
    retrain_world,
)

TOKEN = "saleor-app-token-42"
WINTER_SALE = {
    "id": "UHJvbW90aW9uOjc=",
    "name": "Winter Sale",
    "startDate": "2023-12-16T08:00:00+00:00",
    "endDate": "2023-12-16T20:00:00+00:00",
}


def promotions_page(*nodes: dict[str, Any]) -> bytes:
    connection = {
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [{"node": node, "cursor": "c"} for node in nodes],
    }
    return json.dumps({"data": {"promotions": connection}}).encode()


@pytest.fixture
def world(request: pytest.FixtureRequest) -> RetrainWorld:
    """The retrain handler's emulated shop (test_retrain_handler's fixture)."""
    retrain: RetrainWorld = request.getfixturevalue("retrain_world")
    return retrain


@pytest.fixture
def shop_api():
    server = FakeSaleor(
        lambda number, variables, headers: (
            (200, {}, promotions_page(WINTER_SALE))
            if headers["Authorization"] == f"Bearer {TOKEN}"
            else (401, {}, b'{"detail": "invalid token"}')
        )
    ).__enter__()
    yield server
    server.__exit__()


def promotions_on(world: RetrainWorld, monkeypatch, url: str, token: str | None) -> None:
    secrets = world.session.client("secretsmanager")
    arn = (
        secrets.create_secret(Name="saleor/promotions-token", SecretString=token)["ARN"]
        if token is not None
        else "arn:aws:secretsmanager:eu-central-1:123456789012:secret:gone-AbCdEf"
    )
    monkeypatch.setenv("SALEOR_API_URL", url)
    monkeypatch.setenv("SALEOR_PROMOTIONS_TOKEN_SECRET_ARN", arn)


def stored_proposals(world: RetrainWorld) -> Any:
    s3 = world.session.client("s3")
    return json.loads(s3.get_object(Bucket=world.shop.bucket, Key="proposals/events.json")["Body"].read())


def test_the_nightly_run_writes_the_shops_upcoming_promotions_as_proposals(world, monkeypatch, shop_api):
    world.seed(RETRAIN_AT)
    promotions_on(world, monkeypatch, shop_api.url, TOKEN)
    result = world.invoke()
    assert result["status"] == "promoted", result["reason"]
    assert result["proposals"] == {
        "proposed": ["winter-sale-20231216"],
        "skipped": [],
        "multiplier": None,
        "multiplier_from": None,
    }
    assert "proposals_warning" not in result
    assert stored_proposals(world) == {
        "format": 1,
        "written_at": "2023-12-14T03:15:00Z",
        "proposals": [
            {
                "name": "winter-sale-20231216",
                "start": "2023-12-16T08:00:00Z",
                "end": "2023-12-16T20:00:00Z",
                "promotion": "Winter Sale",
                "promotion_id": "UHJvbW90aW9uOjc=",
            }
        ],
        "skipped": [],
    }
    [(request, headers)] = shop_api.requests
    assert headers["Authorization"] == "Bearer saleor-app-token-42"
    assert request["variables"]["from"] == "2023-12-14T03:15:00Z"


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("revoked-token", "PromotionsError: HTTP 401 from the Saleor API: the token was refused"),
        (None, "ResourceNotFoundException"),
    ],
)
def test_a_refused_token_or_a_missing_secret_is_a_warning_and_the_night_stands(
    world, monkeypatch, shop_api, caplog, token, says
):
    world.seed(RETRAIN_AT)
    promotions_on(world, monkeypatch, shop_api.url, token)
    caplog.set_level("INFO", logger="retrain")
    result = world.invoke()
    assert result["status"] == "promoted", result["reason"]
    assert result["proposals_warning"].startswith("no events proposed from the shop's promotions: ")
    assert says in result["proposals_warning"]
    assert "proposals" not in result
    logged = [record for record in caplog.records if hasattr(record, "retrain")]
    assert [record.levelname for record in logged][-1] == "WARNING"
    s3 = world.session.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=world.shop.bucket, Prefix="proposals/")
