"""`registry_cli events proposals/accept`: the events retrain proposed from the shop's
promotions, listed and copied into the calendar only by the operator, in emulated S3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from saleor_scaling import registry_cli
from saleor_scaling.adapters.calendar_store import S3Calendar
from saleor_scaling.adapters.proposal_store import S3Proposals
from saleor_scaling.local.emulator import create_shop
from saleor_scaling.promotions import Promotion, Proposal, Proposals, propose

NOW = 1_764_547_200
"""2025-12-01T00:00:00Z, the operator's clock."""
THURSDAY = 1_764_835_200  # 2025-12-04T08:00:00Z
HOUR = 3600


@pytest.fixture
def bucket(aws):
    return create_shop(aws).bucket


def events(aws, *argv: str) -> int:
    return registry_cli.events_main(list(argv), client=aws.client("s3"), clock=lambda: NOW + 0.5)


def calendar(aws, bucket) -> Any:
    body = aws.client("s3").get_object(Bucket=bucket, Key="calendar/events.json")["Body"].read()
    return json.loads(body)


def write_proposals(aws, bucket, learned: tuple[float, str] | None = (2.5, "winter-sale")) -> None:
    promotions = [
        Promotion("UHJvbW90aW9uOjE=", "Black Friday", THURSDAY, THURSDAY + 4 * HOUR),
        Promotion("UHJvbW90aW9uOjI=", "Newsletter\x1b[2J", THURSDAY + 24 * HOUR, THURSDAY + 26 * HOUR),
        Promotion("UHJvbW90aW9uOjM=", "Free shipping", THURSDAY, None),
    ]
    S3Proposals(aws.client("s3"), bucket).save(propose(promotions, NOW - 3 * HOUR, learned))


def test_proposals_are_listed_and_one_is_accepted_into_the_calendar(aws, bucket, capsys):
    write_proposals(aws, bucket)
    assert events(aws, "proposals", "--bucket", bucket) == 0
    assert capsys.readouterr().out.splitlines() == [
        "proposed from the shop's promotions at 2025-11-30T21:00Z",
        "proposed black-friday-20251204: 2025-12-04T08:00:00Z to 2025-12-04T12:00:00Z, "
        "x2.5 normal load (suggested by winter-sale); promotion 'Black Friday'",
        "proposed newsletter-2j-20251205: 2025-12-05T08:00:00Z to 2025-12-05T10:00:00Z, "
        "x2.5 normal load (suggested by winter-sale); promotion 'Newsletter [2J'",
        "skipped  'Free shipping' has no end date",
    ]
    assert events(aws, "accept", "black-friday-20251204", "--bucket", bucket, "--lead-minutes", "20") == 0
    assert capsys.readouterr().out == (
        "added black-friday-20251204: 2025-12-04T08:00:00Z to 2025-12-04T12:00:00Z, "
        "x2.5 normal load, raised 20 min early\n"
    )
    assert events(aws, "accept", "newsletter-2j-20251205", "--bucket", bucket, "--capacity", "7") == 0
    assert calendar(aws, bucket) == {
        "format": 1,
        "events": [
            {
                "name": "black-friday-20251204",
                "start": "2025-12-04T08:00:00Z",
                "end": "2025-12-04T12:00:00Z",
                "multiplier": 2.5,
                "lead_minutes": 20,
            },
            {
                "name": "newsletter-2j-20251205",
                "start": "2025-12-05T08:00:00Z",
                "end": "2025-12-05T10:00:00Z",
                "capacity": 7,
            },
        ],
    }
    capsys.readouterr()
    assert events(aws, "proposals", "--bucket", bucket) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].startswith("accepted black-friday-20251204: ")
    assert listed[2].startswith("accepted newsletter-2j-20251205: ")


def test_accepting_a_name_the_calendar_holds_is_refused_and_changes_nothing(aws, bucket, capsys):
    write_proposals(aws, bucket)
    window = ["--start", "2025-12-04T08:00:00Z", "--end", "2025-12-04T09:00:00Z"]
    assert events(aws, "add", "black-friday-20251204", "--bucket", bucket, *window, "--capacity", "30") == 0
    before = calendar(aws, bucket)
    assert events(aws, "accept", "black-friday-20251204", "--bucket", bucket) == 2
    assert "an event named 'black-friday-20251204' exists already" in capsys.readouterr().err
    assert calendar(aws, bucket) == before


def test_without_a_suggested_multiplier_accepting_needs_a_size(aws, bucket, capsys):
    write_proposals(aws, bucket, learned=None)
    assert events(aws, "accept", "black-friday-20251204", "--bucket", bucket) == 2
    assert "has no suggested multiplier (no past event measured one): give --multiplier or --capacity" in (
        capsys.readouterr().err
    )
    assert S3Calendar(aws.client("s3"), bucket).load().version is None
    assert events(aws, "accept", "black-friday-20251204", "--bucket", bucket, "--multiplier", "1") == 2
    assert "multiplier 1.0 must be a number above 1" in capsys.readouterr().err
    assert events(aws, "accept", "black-friday-20251204", "--bucket", bucket, "--multiplier", "3") == 0
    assert calendar(aws, bucket)["events"][0]["multiplier"] == 3.0


def test_no_proposals_unknown_names_and_forged_objects_are_refused(aws, bucket, capsys):
    assert events(aws, "proposals", "--bucket", bucket) == 0
    assert "no proposals" in capsys.readouterr().out
    assert events(aws, "accept", "anything", "--bucket", bucket) == 2
    assert "no proposals to accept" in capsys.readouterr().err
    write_proposals(aws, bucket)
    assert events(aws, "accept", "cyber-monday", "--bucket", bucket) == 2
    assert "no proposal named 'cyber-monday'" in capsys.readouterr().err
    s3 = aws.client("s3")
    for forged, says in [
        (b"[" * 70_000, "over the 65536 byte bound"),
        (b'{"format": 1, "written_at": "2025-11-30T21:00:00Z", "proposals": [{"name": "x"}], "skipped": []}',
         "proposal 'x': start 'None' is not an ISO 8601 time"),
    ]:  # fmt: skip
        s3.put_object(Bucket=bucket, Key="proposals/events.json", Body=forged)
        assert events(aws, "proposals", "--bucket", bucket) == 2
        assert says in capsys.readouterr().err
        assert events(aws, "accept", "x", "--bucket", bucket) == 2
        assert says in capsys.readouterr().err
    assert S3Calendar(s3, bucket).load().version is None


def test_a_forged_proposal_a_year_ahead_is_refused_as_events_add_refuses_it(aws, bucket, capsys):
    # Written as a forged object would be: propose() itself skips it (outside 60 days).
    far = Proposal("someday-20270105", NOW + 400 * 86400, NOW + 400 * 86400 + HOUR, None, None, "x", "y")
    S3Proposals(aws.client("s3"), bucket).save(Proposals(NOW, (far,)))
    assert events(aws, "accept", "someday-20270105", "--bucket", bucket, "--capacity", "4") == 2
    assert "starts more than 366 days ahead" in capsys.readouterr().err
    assert S3Calendar(aws.client("s3"), bucket).load().version is None
