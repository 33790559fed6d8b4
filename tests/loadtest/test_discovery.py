"""Channel discovery against the stand-in Saleor, by one Shopper outside a Locust run:
which channel it picks with an app token, and what it does with a token Saleor refuses."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from locust.env import Environment
from locust.exception import RescheduleTask

from loadtest import locustfile
from loadtest.locustfile import DEFAULT_CHANNEL, Shopper
from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.loadtest.standin import APP_TOKEN, DEFAULT_CHANNELS, EXPIRED_TOKEN, StandIn, standin_saleor

SCHEMA = SHARED_DIR / "saleor" / "schema.graphql"


@pytest.fixture
def failures() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def fresh_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locustfile, "CATALOGUE", locustfile.Catalogue())
    for name in ("SALEOR_CHANNEL", "SALEOR_TOKEN", "SALEOR_DEFAULT_CHANNEL"):
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
    monkeypatch.setenv("SALEOR_TOKEN", APP_TOKEN)
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
    monkeypatch.setenv("SALEOR_TOKEN", APP_TOKEN)
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


# --- a load test that would load nothing, and why a channel was chosen ------------------------


def test_a_token_that_is_not_a_jwt_is_refused_with_the_promised_warning(
    standin, failures, monkeypatch, caplog
) -> None:
    # Saleor takes a bearer that is not a JWT for an app token; one it does not know
    # authorises nothing, so the channel list answers PermissionDenied, not a decode error.
    monkeypatch.setenv("SALEOR_TOKEN", "mistyped-app-token")
    shopper = shopper_for(standin, failures, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="loadtest"):
        assert shopper.discover_channel() == DEFAULT_CHANNEL
        assert shopper.discover_channel() == DEFAULT_CHANNEL
    assert failures == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Before: no warning; the run went on anonymously as if no token had been given.
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "SALEOR_TOKEN was refused (PermissionDenied: Saleor knows no app with this token; mistyped "
        "or deleted?): the channel list is skipped"
    )


def test_a_channel_that_does_not_exist_is_a_failed_discovery_each_visit(
    standin, failures, monkeypatch
) -> None:
    monkeypatch.setenv("SALEOR_CHANNEL", "no-such-channel")
    shopper = shopper_for(standin, failures, monkeypatch)
    for _ in range(2):
        with pytest.raises(RescheduleTask):
            shopper.browse()
    # Before: an ERROR line each visit and no failure at all: Locust reported success.
    missing = "channel 'no-such-channel' does not exist: set SALEOR_CHANNEL to the shop's channel slug"
    assert failures == [f"discovery: {missing}"] * 2
    assert "ProductList" not in standin.operations


@pytest.fixture
def shop_selling_nothing() -> Iterator[StandIn]:
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent")
    with standin_saleor(SCHEMA, empty_channels=(DEFAULT_CHANNEL,)) as server:
        yield server


def test_a_channel_that_sells_nothing_is_a_failed_discovery(
    shop_selling_nothing, failures, monkeypatch
) -> None:
    shopper = shopper_for(shop_selling_nothing, failures, monkeypatch)
    with pytest.raises(RescheduleTask):
        shopper.ensure_catalogue()
    assert failures == [
        "discovery: channel default-channel has no product with a variant in stock among its first 100"
    ]
    assert not locustfile.CATALOGUE.ready()


def test_a_failed_request_during_discovery_is_a_failed_discovery_too(monkeypatch, failures) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = StandIn(url=f"http://127.0.0.1:{port}")
    shopper = shopper_for(closed, failures, monkeypatch)
    with pytest.raises(RescheduleTask):
        shopper.ensure_catalogue()
    assert len(failures) == 2, failures
    # Before: "HTTP 0", which names no cause.
    assert failures[0].startswith("Channels: HTTP 0, no answer: ConnectionRefusedError: ")
    assert "Connection refused" in failures[0]
    assert failures[1] == "discovery: Channels failed, so no shop traffic can be sent (see its own row)"


def test_the_default_channel_is_the_stacks_and_can_be_set(standin, failures, monkeypatch, caplog) -> None:
    app = (REPO_ROOT / "infra-cfn" / "app.yaml").read_text()
    assert f"DEFAULT_CHANNEL_SLUG={DEFAULT_CHANNEL}\n" in app
    monkeypatch.setenv("SALEOR_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SALEOR_DEFAULT_CHANNEL", "channel-usd")
    shopper = shopper_for(standin, failures, monkeypatch)
    with caplog.at_level(logging.INFO, logger="loadtest"):
        shopper.ensure_catalogue()
    assert locustfile.CATALOGUE.channel == "channel-usd"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos[-1].startswith(
        "channel channel-usd, the shop's default channel (SALEOR_DEFAULT_CHANNEL), active among the 3 "
        "channels listed: 3 buyable products"
    ), infos


def test_the_reason_for_the_channel_is_said(failures, monkeypatch, caplog) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"Saleor's schema {SCHEMA} is absent")
    monkeypatch.setenv("SALEOR_TOKEN", APP_TOKEN)
    with standin_saleor(SCHEMA, channels=("shop-eur",)) as single, caplog.at_level(logging.INFO, "loadtest"):
        shopper_for(single, failures, monkeypatch).ensure_catalogue()
    assert locustfile.CATALOGUE.channel == "shop-eur"
    assert caplog.records[-1].getMessage().startswith("channel shop-eur, the only active channel listed:")
    monkeypatch.setattr(locustfile, "CATALOGUE", locustfile.Catalogue())
    caplog.clear()
    with (
        standin_saleor(SCHEMA, channels=("a-shop", "b-shop")) as two,
        caplog.at_level(logging.INFO, "loadtest"),
    ):
        shopper_for(two, failures, monkeypatch).ensure_catalogue()
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith(
            "channel a-shop, the first of the 2 active channels listed: the default channel default-channel "
            "(the stack's DEFAULT_CHANNEL_SLUG; SALEOR_DEFAULT_CHANNEL to change) is not among them:"
        )
    )
    monkeypatch.setattr(locustfile, "CATALOGUE", locustfile.Catalogue())
    monkeypatch.delenv("SALEOR_TOKEN")
    caplog.clear()
    with standin_saleor(SCHEMA) as shop, caplog.at_level(logging.INFO, "loadtest"):
        shopper_for(shop, failures, monkeypatch).ensure_catalogue()
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith(
            "channel default-channel, the shop's default channel (the stack's DEFAULT_CHANNEL_SLUG; "
            "SALEOR_DEFAULT_CHANNEL to change): the channel list needs SALEOR_TOKEN, an app token:"
        )
    )
    assert failures == []
