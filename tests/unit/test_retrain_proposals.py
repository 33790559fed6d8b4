"""Retrain proposes events from the shop's upcoming promotions, at the multiplier the last
ended event suggests; whatever fails there is a warning in the report, never a failed or
changed night."""

from __future__ import annotations

import pytest

from saleor_scaling.calendar import Calendar
from saleor_scaling.local.memory import MemoryArchive, MemoryMetrics, MemoryNotifier, MemoryRegistry
from saleor_scaling.promotions import Promotion, PromotionsError, Proposals
from saleor_scaling.retrain_service import RetrainPorts, RetrainResult, RetrainStatus, run_retrain
from saleor_scaling.settings import RetrainSettings
from tests.unit.test_retrain_events import RETRAIN_AT, SETTINGS, FixedCalendar, sale, shop_with_a_sale

DAY = 86400
UPCOMING = Promotion("UHJvbW90aW9uOjE=", "Black Friday", RETRAIN_AT + 3 * DAY, RETRAIN_AT + 4 * DAY)


class Shop:
    def __init__(self, promotions: list[Promotion] | None = None, error: Exception | None = None) -> None:
        self.promotions, self.error = promotions or [], error
        self.asked: list[tuple[int, int]] = []

    def upcoming(self, now: int, days_ahead: int) -> list[Promotion]:
        self.asked.append((now, days_ahead))
        if self.error is not None:
            raise self.error
        return self.promotions


class Written:
    def __init__(self, error: Exception | None = None) -> None:
        self.saved: list[Proposals] = []
        self.error = error

    def save(self, proposals: Proposals) -> None:
        if self.error is not None:
            raise self.error
        self.saved.append(proposals)


def retrain(
    calendar: FixedCalendar, shop: Shop | None, written: Written | None, notifier: MemoryNotifier
) -> RetrainResult:
    ports = RetrainPorts(
        MemoryMetrics(shop_with_a_sale(2.5)),
        MemoryArchive(),
        MemoryRegistry(),
        notifier,
        calendar=calendar,
        promotions=shop,
        proposals=written,
    )
    return run_retrain(RETRAIN_AT, SETTINGS, ports)


def test_upcoming_promotions_are_proposed_with_the_multiplier_the_ended_sale_suggests():
    shop, written, notifier = Shop([UPCOMING]), Written(), MemoryNotifier()
    result = retrain(FixedCalendar(Calendar((sale(capacity=30),))), shop, written, notifier)
    assert result.status is RetrainStatus.PROMOTED
    assert shop.asked == [(RETRAIN_AT, 60)]
    [proposals] = written.saved
    [proposal] = proposals.proposals
    assert proposal.to_json() == {
        "name": "black-friday-20231217",
        "start": "2023-12-17T03:15:00Z",
        "end": "2023-12-18T03:15:00Z",
        "promotion": "Black Friday",
        "promotion_id": "UHJvbW90aW9uOjE=",
        "multiplier": 2.5,
        "multiplier_from": "winter-sale",
    }
    expected = {
        "proposed": ["black-friday-20231217"],
        "skipped": [],
        "multiplier": 2.5,
        "multiplier_from": "winter-sale",
    }
    assert result.log_record()["proposals"] == expected
    [(_, notice)] = notifier.notices
    assert notice["proposals"] == expected
    assert result.warning == ""


def test_a_fault_of_the_shop_is_a_warning_and_the_night_stands():
    written, notifier = Written(), MemoryNotifier()
    shop = Shop(error=PromotionsError("HTTP 401 from the Saleor API: the token was refused"))
    result = retrain(FixedCalendar(Calendar()), shop, written, notifier)
    assert result.status is RetrainStatus.PROMOTED
    assert written.saved == []  # yesterday's proposals stay
    assert result.proposals_warning == (
        "no events proposed from the shop's promotions: PromotionsError: "
        "HTTP 401 from the Saleor API: the token was refused"
    )
    record = result.log_record()
    assert record["proposals_warning"] == result.proposals_warning
    assert "proposals" not in record
    assert result.warning == result.proposals_warning


def test_a_fault_writing_them_is_a_warning_too():
    written = Written(error=OSError("S3 unavailable"))
    result = retrain(FixedCalendar(Calendar()), Shop([UPCOMING]), written, MemoryNotifier())
    assert result.status is RetrainStatus.PROMOTED
    assert result.proposals_warning == (
        "no events proposed from the shop's promotions: OSError: S3 unavailable"
    )


def test_off_by_default_nothing_is_read_nor_reported():
    result = retrain(FixedCalendar(Calendar()), None, None, MemoryNotifier())
    record = result.log_record()
    assert "proposals" not in record
    assert "proposals_warning" not in record


ENV = {
    "AUTO_SCALING_GROUP_NAME": "saleor-api",
    "LOAD_BALANCER_FULL_NAME": "app/saleor/0123456789abcdef",
    "MODEL_BUCKET": "models",
}
SECRET = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:saleor/promotions-token-AbCdEf"


@pytest.mark.parametrize(
    ("extra", "reads"),
    [
        ({}, False),
        ({"SALEOR_API_URL": "https://shop.example.com/graphql/"}, False),
        ({"SALEOR_PROMOTIONS_TOKEN_SECRET_ARN": SECRET}, False),
        (
            {
                "SALEOR_API_URL": "https://shop.example.com/graphql/",
                "SALEOR_PROMOTIONS_TOKEN_SECRET_ARN": SECRET,
            },
            True,
        ),
    ],
)
def test_promotions_are_read_only_with_both_variables(extra, reads):
    settings = RetrainSettings.from_env({**ENV, **extra})
    assert settings.reads_promotions is reads
    assert settings.promotions_token_secret_arn == extra.get("SALEOR_PROMOTIONS_TOKEN_SECRET_ARN", "")
