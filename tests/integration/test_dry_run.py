"""A dry run (`"detail": {"dry_run": true}`) reads and decides as the real run would and
writes nothing: not the group, not its tags, not the state, no notice, no metric. It
needs only read access, and it can be repeated, even for a slot already decided."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import NOW, emitted_metrics

WRITES = ("put_", "update_", "create_", "delete_", "set_", "publish", "copy_")


class ReadOnly:
    """A client with read-only credentials: every write is AccessDenied."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name.startswith(WRITES):

            def denied(*args: Any, **kwargs: Any) -> Any:
                error = {"Error": {"Code": "AccessDenied", "Message": f"read-only: {name}"}}
                raise ClientError(error, name)  # type: ignore[arg-type]

            return denied
        return getattr(self._client, name)


def snapshot(world: Any) -> tuple[Any, ...]:
    group = world.describe()
    state = world.session.client("s3").list_object_versions(Bucket=world.shop.bucket, Prefix="state/")
    return (
        group["DesiredCapacity"],
        group["MinSize"],
        sorted((tag["Key"], tag["Value"]) for tag in group.get("Tags", [])),
        [version["VersionId"] for version in state.get("Versions", [])],
    )


@pytest.fixture
def read_only(world, monkeypatch):
    _, ports = world.handler.dependencies()
    for port in (ports.group, ports.state, ports.notifier, ports.metrics, ports.models, ports.archive):
        if hasattr(port, "_client"):
            monkeypatch.setattr(port, "_client", ReadOnly(port._client))
    return world


def test_a_dry_run_decides_and_writes_nothing_twice_with_read_only_access(read_only, capsys):
    world = read_only
    before = snapshot(world)
    results = [world.invoke(dry_run=True) for _ in range(2)]
    for result in results:
        assert result["status"] == "dry-run"
        assert result["dry_run"]["would_be"] == "scaled"  # the real run scales this slot 2 -> 8
        assert result["decision"]["target"] == 8
        assert result["reason"].startswith("dry run, nothing written or changed")
        would = result["dry_run"]["would"]
        assert would[0].startswith("record slot")
        assert "set desired capacity 8 and MinSize 8" in would
        assert any(entry.startswith("write the lease tag 'v1 floor=8") for entry in would)
    assert snapshot(world) == before
    assert emitted_metrics(capsys.readouterr().out) == {}  # a rehearsal moves no dashboard


def test_a_dry_run_repeats_a_slot_the_real_run_decided(world):
    real = world.invoke()
    assert real["status"] == "scaled"
    before = snapshot(world)
    rehearsal = world.invoke(dry_run=True)
    assert rehearsal["status"] == "dry-run"
    assert rehearsal["dry_run"]["would_be"] == "decided"  # already at 8: it would hold
    assert snapshot(world) == before


def test_a_dry_run_says_it_would_give_back_an_expired_floor(world):
    world.invoke()
    later = world.advance(NOW + 40 * 60)
    result = world.invoke(later, dry_run=True)
    assert result["status"] == "dry-run"
    assert any(entry == "set MinSize 1" for entry in result["dry_run"]["would"])
    assert world.describe()["MinSize"] == 8


@pytest.mark.parametrize("flag", ["yes", 1, None, [True]])
def test_a_dry_run_flag_that_is_not_a_boolean_is_an_invalid_event(world, flag, capsys):
    with pytest.raises(ValueError, match="dry_run"):
        world.invoke(dry_run=flag)
    assert emitted_metrics(capsys.readouterr().out)["InvalidEvents"] == 1
    assert json.dumps(world.describe()["DesiredCapacity"]) == "2"
