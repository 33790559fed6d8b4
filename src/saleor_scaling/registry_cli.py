"""List the model versions the nightly job promoted, and roll back to an earlier one; keep
the calendar of planned events (sales) predict scales for ahead of time.

    python -m saleor_scaling.registry_cli list --bucket BUCKET
    python -m saleor_scaling.registry_cli rollback --bucket BUCKET [--to MANIFEST_VERSION_ID]
        [--capacity-per-instance N]
    python -m saleor_scaling.registry_cli events add NAME --bucket BUCKET --start ISO --end ISO
        (--multiplier X | --capacity N) [--lead-minutes M]
    python -m saleor_scaling.registry_cli events list --bucket BUCKET
    python -m saleor_scaling.registry_cli events remove NAME --bucket BUCKET
    python -m saleor_scaling.registry_cli events preview NAME --bucket BUCKET --group GROUP
    python -m saleor_scaling.registry_cli events proposals --bucket BUCKET
    python -m saleor_scaling.registry_cli events accept NAME --bucket BUCKET [--multiplier X | --capacity N]

The manifest is the pointer predict follows; every promotion wrote a new version of it in
the versioned bucket. Rolling back re-publishes an earlier manifest version as the newest
(nothing is deleted, so a rollback can itself be rolled back). The manifest and the model
it names are read and validated as predict reads and validates them (bounded in size and
nesting, every field within bounds, the arrays a servable forest; nothing is unpickled,
so an old or forged manifest cannot run code on this machine) before the pointer moves,
and predict picks it up within five minutes. A version that cannot be read is listed as
unreadable with the reason, skipped by a plain rollback, and refused as a `--to` target.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import boto3

from saleor_scaling import STEP_SECONDS
from saleor_scaling.adapters.calendar_store import CalendarConflictError, S3Calendar
from saleor_scaling.adapters.history_archive import S3HistoryArchive
from saleor_scaling.adapters.proposal_store import S3Proposals
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.calendar import (
    MAX_DAYS_AHEAD,
    Calendar,
    CalendarError,
    PlannedEvent,
    PreviewStep,
    event_outcome,
    parse_time,
    preview,
)
from saleor_scaling.features import STEPS_PER_WEEK
from saleor_scaling.model import ModelError, ModelMetadata, ServingBounds, load_verified
from saleor_scaling.promotions import Proposals
from saleor_scaling.settings import ANCHOR_OFFSET_STEPS, ModelLocation

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


@dataclass(frozen=True)
class ManifestVersion:
    version_id: str
    last_modified: str
    is_latest: bool
    metadata: ModelMetadata | None
    """None where that manifest version cannot be read or is out of bounds."""
    error: str = ""
    """Why `metadata` is None."""


class RollbackError(Exception):
    pass


MAX_REASON_LENGTH = 300
"""An unreadable version's reason is one line of the listing: a forged manifest chooses
the text an error quotes, so it is cut and its line breaks removed."""


def manifest_versions(client: S3Client, location: ModelLocation) -> list[ManifestVersion]:
    """Newest first. Each version is read as predict reads the manifest: one that cannot
    be (too large, too deep, not JSON, out of bounds) is listed with why."""
    registry = S3ModelRegistry(client, location)
    versions: list[ManifestVersion] = []
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.manifest_key):
        for entry in page.get("Versions", []):
            if entry["Key"] != location.manifest_key:
                continue
            error = ""
            try:
                metadata: ModelMetadata | None = registry.current(entry["VersionId"])
            except ModelError as refused:
                metadata, error = None, " ".join(str(refused).split())[:MAX_REASON_LENGTH]
            versions.append(
                ManifestVersion(
                    entry["VersionId"], entry["LastModified"].isoformat(), entry["IsLatest"], metadata, error
                )
            )
    versions.sort(key=lambda version: version.last_modified, reverse=True)
    return versions


DEFAULT_CAPACITY_PER_INSTANCE = 1000.0
"""The template's CapacityPerInstance default."""


def rollback(
    client: S3Client,
    location: ModelLocation,
    to_version: str | None = None,
    capacity_per_instance: float = DEFAULT_CAPACITY_PER_INSTANCE,
) -> ManifestVersion:
    """Make an earlier manifest version current again (by default the newest readable one
    before the current: unreadable versions are skipped); refuses a target that is
    unreadable, or whose model is missing or fails validation against the stack's
    CAPACITY_PER_INSTANCE."""
    versions = manifest_versions(client, location)
    if to_version is None:
        earlier = [version for version in versions[1:] if version.metadata is not None]
        if not earlier:
            skipped = len(versions[1:])
            raise RollbackError(
                "there is no earlier model version to roll back to"
                + (f" ({skipped} earlier version(s) unreadable)" if skipped else "")
            )
        target = earlier[0]
    else:
        matches = [version for version in versions if version.version_id == to_version]
        if not matches:
            raise RollbackError(f"manifest version {to_version} does not exist")
        target = matches[0]
    if target.metadata is None:
        raise RollbackError(f"manifest version {target.version_id} is unreadable: {target.error}")
    try:
        load_verified(
            S3ModelRegistry(client, location).model_bytes(target.metadata),
            target.metadata,
            ServingBounds(capacity_per_instance),
        )
    except ModelError as error:
        raise RollbackError(f"model of manifest version {target.version_id} cannot serve: {error}") from error
    client.copy_object(
        Bucket=location.bucket,
        Key=location.manifest_key,
        CopySource={"Bucket": location.bucket, "Key": location.manifest_key, "VersionId": target.version_id},
    )
    return target


def main(argv: list[str] | None = None, client: S3Client | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["events"]:
        return events_main(arguments[1:], client)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "rollback"])
    parser.add_argument("--bucket", required=True, help="the stack's ModelBucketName output")
    parser.add_argument("--manifest-key", default="models/manifest.json")
    parser.add_argument(
        "--to", dest="to_version", help="manifest version id (default: the one before the current)"
    )
    parser.add_argument(
        "--capacity-per-instance",
        type=float,
        default=DEFAULT_CAPACITY_PER_INSTANCE,
        help="the stack's CapacityPerInstance parameter: the model's capacity must lie within x/÷ 4 of it",
    )
    args = parser.parse_args(arguments)
    s3 = client or boto3.client("s3")
    location = ModelLocation(bucket=args.bucket, manifest_key=args.manifest_key)
    if args.command == "list":
        for version in manifest_versions(s3, location):
            meta = version.metadata
            detail = (
                f"model {meta.model_version_id} trained {meta.trained_at} "
                f"on {meta.rows} rows to {meta.training_end}, "
                f"held-out MAE {meta.scores.get('holdout_mae', float('nan')):.1f}"
                if meta
                else f"unreadable: {version.error}"
            )
            print(
                f"{'*' if version.is_latest else ' '} {version.version_id}  {version.last_modified}  {detail}"
            )
        return 0
    try:
        if not args.capacity_per_instance > 0:
            raise RollbackError("--capacity-per-instance must be > 0")
        target = rollback(s3, location, args.to_version, args.capacity_per_instance)
    except RollbackError as error:
        print(f"rollback refused: {error}", file=sys.stderr)
        return 2
    trained = target.metadata.trained_at if target.metadata else "?"
    print(f"manifest now points at the model of manifest version {target.version_id} (trained {trained})")
    return 0


PREVIEW_HISTORY_WEEKS = 4
"""The preview's normal load is the newest of the last four weeks' same weekday and time."""


def events_main(
    argv: list[str], client: S3Client | None = None, clock: Callable[[], float] = time.time
) -> int:
    """`events add/list/remove/preview/review`: the calendar predict and retrain read
    (calendar/events.json); `events proposals/accept`: the events retrain proposed from the
    shop's promotions (proposals/events.json), copied into the calendar only when accepted."""
    parser = argparse.ArgumentParser(
        prog="registry_cli events",
        description="The calendar of planned events (sales) predict scales for ahead of time.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="declare an event")
    add.add_argument("name")
    add.add_argument("--start", required=True, help="ISO 8601 with a zone, e.g. 2026-11-27T06:00:00+01:00")
    add.add_argument(
        "--end", required=True, help="ISO 8601 with a zone, after --start, at most 14 days later"
    )
    size = add.add_mutually_exclusive_group(required=True)
    size.add_argument("--multiplier", type=float, help="the event's load as a multiple of the normal load")
    size.add_argument("--capacity", type=int, help="instances the event needs")
    add.add_argument("--lead-minutes", type=int, default=0, help="raise capacity this much earlier")
    add.add_argument(
        "--past",
        action="store_true",
        help="declare an event that already happened: retrain keeps it out of the normal load, "
        "`events review` measures it",
    )
    commands.add_parser("list", help="the declared events")
    remove = commands.add_parser("remove", help="remove an event")
    remove.add_argument("name")
    look = commands.add_parser("preview", help="planned capacity by 5 minutes and its instance-hours")
    look.add_argument("name")
    look.add_argument("--group", help="the Auto Scaling group (its history is history/GROUP/)")
    look.add_argument("--history-prefix", help="default history/GROUP")
    look.add_argument(
        "--capacity-per-instance",
        type=float,
        help="requests per minute per instance (default: the serving model's, as predict uses)",
    )
    review = commands.add_parser(
        "review", help="after an event: its observed peak against the normal load, the multiplier it suggests"
    )
    review.add_argument("name")
    review.add_argument("--group", help="the Auto Scaling group (its history is history/GROUP/)")
    review.add_argument("--history-prefix", help="default history/GROUP")
    commands.add_parser("proposals", help="the events proposed from the shop's upcoming promotions")
    accept = commands.add_parser("accept", help="copy a proposed event into the calendar")
    accept.add_argument("name")
    accepted_size = accept.add_mutually_exclusive_group()
    accepted_size.add_argument(
        "--multiplier", type=float, help="instead of the suggested multiplier (a past event's)"
    )
    accepted_size.add_argument("--capacity", type=int, help="instances the event needs, instead")
    accept.add_argument("--lead-minutes", type=int, default=0, help="raise capacity this much earlier")
    for command in (
        add,
        remove,
        look,
        review,
        accept,
        commands.choices["list"],
        commands.choices["proposals"],
    ):
        command.add_argument("--bucket", required=True, help="the stack's ModelBucketName output")
    args = parser.parse_args(argv)
    s3 = client or boto3.client("s3")
    store = S3Calendar(s3, args.bucket)
    now = int(clock())
    try:
        if args.command == "add":
            event = _declared_event(args, now)
            stored = store.load()
            store.save(stored.calendar.with_event(event), stored.version)
            print(f"added {event.describe()}")
        elif args.command == "remove":
            stored = store.load()
            store.save(stored.calendar.without(args.name), stored.version)
            print(f"removed {args.name}")
        elif args.command == "list":
            events = store.load().calendar.events
            for listed in events:
                state = "over" if listed.end <= now else "on" if listed.start <= now else "planned"
                print(f"{state:8} {listed.describe()}")
            if not events:
                print("no events declared")
        elif args.command == "review":
            _print_review(s3, args, store.load().calendar, now)
        elif args.command == "proposals":
            _print_proposals(S3Proposals(s3, args.bucket).load(), store.load().calendar, now)
        elif args.command == "accept":
            event = _accepted_event(S3Proposals(s3, args.bucket).load(), args, now)
            stored = store.load()
            store.save(stored.calendar.with_event(event), stored.version)
            print(f"added {event.describe()}")
        else:
            _print_preview(s3, args, store.load().calendar.named(args.name), now)
    except (CalendarError, CalendarConflictError, ModelError) as error:
        print(f"events {args.command} refused: {error}", file=sys.stderr)
        return 2
    return 0


def _print_proposals(proposals: Proposals | None, calendar: Calendar, now: int) -> None:
    if proposals is None:
        print("no proposals: retrain writes them nightly when SaleorPromotionsTokenSecretArn is set")
        return
    print(f"proposed from the shop's promotions at {_iso_minute(proposals.written_at).strip()}")
    declared = {event.name for event in calendar.events}
    for proposal in proposals.proposals:
        state = "accepted" if proposal.name in declared else "over" if proposal.end <= now else "proposed"
        print(f"{state:8} {proposal.describe()}")
    if not proposals.proposals:
        print("no upcoming promotion to propose")
    for reason in proposals.skipped:
        print(f"skipped  {reason}")


def _accepted_event(proposals: Proposals | None, args: argparse.Namespace, now: int) -> PlannedEvent:
    if proposals is None:
        raise CalendarError("no proposals to accept: retrain has written none")
    proposal = proposals.named(args.name)
    event = proposal.as_event(args.multiplier, args.capacity)
    if args.lead_minutes:
        event = replace(event, lead_minutes=args.lead_minutes)
    if event.end <= now:
        raise CalendarError(f"proposal {event.name!r} is already over")
    if event.start > now + MAX_DAYS_AHEAD * 86400:
        raise CalendarError(f"proposal {event.name!r} starts more than {MAX_DAYS_AHEAD} days ahead")
    return event


def _declared_event(args: argparse.Namespace, now: int) -> PlannedEvent:
    event = PlannedEvent(
        name=args.name,
        start=parse_time(args.start, "--start"),
        end=parse_time(args.end, "--end"),
        multiplier=args.multiplier,
        capacity=args.capacity,
        lead_minutes=args.lead_minutes,
    )
    if event.end <= now and not args.past:
        raise CalendarError(
            f"event {event.name!r} is already over (its end is in the past): add --past to declare "
            "one that happened"
        )
    if event.end > now and args.past:
        raise CalendarError(f"event {event.name!r} has not ended: --past is for events that happened")
    if event.start > now + MAX_DAYS_AHEAD * 86400:
        raise CalendarError(f"event {event.name!r} starts more than {MAX_DAYS_AHEAD} days ahead")
    return event


def _print_preview(s3: S3Client, args: argparse.Namespace, event: PlannedEvent, now: int) -> None:
    """As predict will size it: the serving model's capacity per instance and reach (one
    boot delay), the normal load from the history backup (same weekday and time, the
    newest of the last four weeks, as predict reads the week before)."""
    if not (args.group or args.history_prefix):
        raise CalendarError("preview needs --group (or --history-prefix) to read the normal load")
    metadata = S3ModelRegistry(s3, ModelLocation(bucket=args.bucket)).current()
    capacity = args.capacity_per_instance or metadata.capacity_per_instance
    if not (math.isfinite(capacity) and capacity > 0):
        raise CalendarError("--capacity-per-instance must be a number above 0")
    reach = (metadata.horizon_steps - ANCHOR_OFFSET_STEPS) * STEP_SECONDS
    prefix = args.history_prefix or f"history/{args.group}"
    week = STEPS_PER_WEEK * STEP_SECONDS
    history_start = now - now % 86400 - PREVIEW_HISTORY_WEEKS * week
    history = S3HistoryArchive(s3, args.bucket, prefix).read(history_start, now - now % STEP_SECONDS)
    demand = history.demand_per_minute()

    def normal_demand(step_time: int) -> float:
        behind = max(1, -(-(step_time - now) // week))  # whole weeks back to the past
        for weeks in range(behind, behind + PREVIEW_HISTORY_WEEKS):
            position = (step_time - weeks * week - history.start) // STEP_SECONDS
            if 0 <= position < len(demand) and math.isfinite(demand[position]):
                return float(demand[position])
        return math.nan

    steps = preview(event, normal_demand, capacity, reach)
    print(f"{event.describe()}")
    print(f"capacity per instance {capacity:g}/min; capacity set {reach // 60} min (one boot delay) ahead")
    print("step (UTC)            normal  planned")
    for step in steps:
        print(f"{_iso_minute(step.time)}  {_cell(step.normal):>6}  {_cell(step.planned):>7}")
    print(_preview_totals(steps))


REVIEW_HISTORY_DAYS = 8
"""An event's normal load is the same time last week, else yesterday: a week and a day
before its start."""


def _print_review(s3: S3Client, args: argparse.Namespace, calendar: Calendar, now: int) -> None:
    """What an ended event did, from the history backup, as retrain records it nightly
    (`calendar.event_outcome`): its observed peak, the normal load there, the multiplier
    that would have covered it and the one suggested for a similar event."""
    event = calendar.named(args.name)
    if event.end > now:
        raise CalendarError(
            f"event {event.name!r} has not ended: review it after {_iso_minute(event.end).strip()}"
        )
    if not (args.group or args.history_prefix):
        raise CalendarError("review needs --group (or --history-prefix) to read the load")
    prefix = args.history_prefix or f"history/{args.group}"
    start = event.start - event.start % STEP_SECONDS - REVIEW_HISTORY_DAYS * 86400
    history = S3HistoryArchive(s3, args.bucket, prefix).read(start, event.end + STEP_SECONDS)
    outcome = event_outcome(event, history.start, history.demand_per_minute(), calendar.events)
    if outcome is None:
        raise CalendarError(
            f"no outcome for {event.name!r}: the history backup holds no step of it with its normal "
            "load (same time last week or yesterday) known"
        )
    print(outcome.describe())


def _preview_totals(steps: list[PreviewStep]) -> str:
    known = [step for step in steps if math.isfinite(step.normal) and math.isfinite(step.planned)]
    hours = STEP_SECONDS / 3600
    normal = sum(step.normal for step in known) * hours
    planned = sum(step.planned for step in known) * hours
    unknown = len(steps) - len(known)
    return f"instance-hours: normal {normal:.1f}, planned {planned:.1f}, extra {planned - normal:.1f}" + (
        f" ({unknown} step(s) without a known normal load left out)" if unknown else ""
    )


def _cell(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "?"


def _iso_minute(epoch_seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(epoch_seconds)) + "Z     "


if __name__ == "__main__":
    sys.exit(main())
