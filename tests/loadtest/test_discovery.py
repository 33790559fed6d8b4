"""Channel discovery against the stand-in Saleor, by one Shopper outside a Locust run:
which channel it picks with an app token, and what it does with a token Saleor refuses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from locust.env import Environment

from loadtest import locustfile
from loadtest.locustfile import DEFAULT_CHANNEL, Shopper
from tests.conftest import SHARED_DIR
from tests.loadtest.standin import DEFAULT_CHANNELS, EXPIRED_TOKEN, StandIn, standin_saleor

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"


@pytest.fixture
def failures() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def fresh_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locustfile, "CATALOGUE", locustfile.Catalogue())
    for name in ("SALEOR_CHANNEL", "SALEOR_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def shopper_for(standin: StandIn, failures: list[str], monkeypatch: pytest.MonkeyPatch) -> Shopper:
    """One Shopper bound to the stand-in; every failed request lands in `failures`."""
    environment = Environment(user_classes=[Shopper], host=standin.url)

    def record(name: str, exception: Exception | None = None, **_: Any) -> None:
        if exception is not None:
            failures.append(f"{name}: {exception}")

    environment.events.request.add_listener(record)
    monkeypatch.setattr(Shopper, "host", standin.url)
    return Shopper(environment)


def serve(channels: tuple[str, ...] = DEFAULT_CHANNELS) -> Iterator[StandIn]:
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent (set SALEOR_SHARED_DIR to the shared/ folder)")
    with standin_saleor(SCHEMA, channels=channels) as server:
        yield server


@pytest.fixture
def standin() -> Iterator[StandIn]:
    yield from serve()


@pytest.fixture
def shop_without_default() -> Iterator[StandIn]:
    yield from serve(("channel-pln", "channel-usd"))


def test_with_a_token_the_shops_default_channel_is_preferred(standin, failures, monkeypatch) -> None:
    monkeypatch.setenv("SALEOR_TOKEN", "app-token")
    shopper = shopper_for(standin, failures, monkeypatch)
    # Saleor lists channel-pln first: the first active channel is not the shop's own
    assert standin.channels[0] == "channel-pln"
    assert shopper.discover_channel() == DEFAULT_CHANNEL
    assert standin.tokens["Channels"] == 1
    assert "ChannelBySlug" not in standin.operations
    assert failures == []


def test_without_the_default_channel_the_first_active_one_is_taken(
    shop_without_default, failures, monkeypatch
) -> None:
    monkeypatch.setenv("SALEOR_TOKEN", "app-token")
    assert shopper_for(shop_without_default, failures, monkeypatch).discover_channel() == "channel-pln"
    assert failures == []


def test_an_expired_token_falls_back_as_the_anonymous_refusal_does(
    standin, failures, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("SALEOR_TOKEN", EXPIRED_TOKEN)
    shopper = shopper_for(standin, failures, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="loadtest"):
        assert shopper.discover_channel() == DEFAULT_CHANNEL
        assert shopper.discover_channel() == DEFAULT_CHANNEL  # a second discovery: no second warning
        shopper.discover()  # and the shop's traffic can start
    assert failures == []
    assert standin.operations["Channels"] == 3
    assert standin.operations["ChannelBySlug"] == 3
    assert standin.tokens == {"Channels": 3}  # the token goes with the channel list only
    assert locustfile.CATALOGUE.ready()
    assert locustfile.CATALOGUE.channel == DEFAULT_CHANNEL
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "SALEOR_TOKEN was refused (ExpiredSignatureError)" in warnings[0]
    assert "app token" in warnings[0]


def test_anonymous_discovery_warns_of_nothing(standin, failures, monkeypatch, caplog) -> None:
    shopper = shopper_for(standin, failures, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="loadtest"):
        assert shopper.discover_channel() == DEFAULT_CHANNEL
    assert failures == []
    assert standin.tokens == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
