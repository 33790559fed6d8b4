"""The lease record and the judgement of who set MinSize, value by value: every bound at
its value and one past it, every record and note written out literally."""

from __future__ import annotations

import pytest

from saleor_scaling.lease import (
    CLOCK_TOLERANCE_SECONDS,
    MAX_TAG_VALUE_LENGTH,
    Lease,
    LeaseError,
    Ownership,
    decode,
    judge,
)

NOW = 1_765_078_500
LEASE_SECONDS = 1800


def test_the_bounds_the_record_is_checked_against():
    assert (CLOCK_TOLERANCE_SECONDS, MAX_TAG_VALUE_LENGTH) == (60, 256)


# --- Lease ---------------------------------------------------------------------------------


def test_a_lease_encodes_every_field_in_order():
    assert Lease(8, 7, 1, 1765080000, 1765078200).encode() == (
        "v1 floor=8 prior=7 base=1 until=1765080000 slot=1765078200"
    )


def test_pending_confirmed_owns():
    pending = Lease(floor=8, prior=7, base=1, until=100, slot=50)
    assert pending.pending is True
    assert Lease(8, 8, 1, 100, 50).pending is False
    assert pending.confirmed(7) == Lease(7, 7, 1, 100, 50)
    assert pending.confirmed(8) == Lease(8, 8, 1, 100, 50)
    assert [pending.owns(size) for size in (6, 7, 8, 9)] == [False, True, True, False]


def test_a_lease_expires_at_its_until():
    lease = Lease(8, 8, 1, 1000, 0)
    assert lease.expired(999.5) is False
    assert lease.expired(1000) is True
    assert lease.expired(1001) is True


# --- decode ----------------------------------------------------------------------------------


def test_decode_reads_the_fields():
    assert decode("v1 floor=8 prior=7 base=1 until=1765080000 slot=1765078200", 20) == Lease(
        8, 7, 1, 1765080000, 1765078200
    )
    assert decode("  v1 floor=0 prior=0 base=0 until=0 slot=0\n", 0) == Lease(0, 0, 0, 0, 0)


def test_a_tag_of_256_characters_is_parsed_and_of_257_refused_unread():
    text = "v1 floor=8 prior=8 base=1 until=100 slot=50"
    padded = text + " " * (256 - len(text))
    assert decode(padded, 20) == Lease(8, 8, 1, 100, 50)
    with pytest.raises(LeaseError) as refused:
        decode(padded + " ", 20)
    assert str(refused.value) == "lease tag of 257 characters (a lease is under 100)"


@pytest.mark.parametrize(
    "text",
    [
        "v1 floor=08 prior=8 base=1 until=100 slot=50",
        "v1 floor=1000000 prior=8 base=1 until=100 slot=50",
        "v1 floor=8 prior=8 base=1 until=1000000000000 slot=50",
        "v1 floor=8 prior=8 base=1 until=100 slot=1000000000000",
        "v2 floor=8 prior=8 base=1 until=100 slot=50",
        "v1 floor=8 prior=8 base=1 until=100 slot=50 x",
        "v1 floor=-1 prior=8 base=1 until=100 slot=50",
    ],
)
def test_decode_refuses_what_predict_cannot_write(text):
    with pytest.raises(LeaseError) as refused:
        decode(text, 10**6)
    assert str(refused.value) == f"lease tag {text[:80]!r} is not 'v1 floor=N prior=N base=N until=T slot=T'"


def test_the_widest_sizes_and_times_decode():
    assert decode(
        "v1 floor=999999 prior=999999 base=9 until=999999999999 slot=999999999999", 999999
    ) == Lease(999999, 999999, 9, 999999999999, 999999999999)


def test_a_refused_pattern_quotes_only_80_characters():
    text = "x" * 100
    with pytest.raises(LeaseError) as refused:
        decode(text, 20)
    assert str(refused.value) == f"lease tag '{'x' * 80}' is not 'v1 floor=N prior=N base=N until=T slot=T'"


@pytest.mark.parametrize(
    ("text", "max_size", "accepted"),
    [
        ("v1 floor=8 prior=5 base=5 until=1 slot=1", 8, True),  # base at min(floor, prior)
        ("v1 floor=5 prior=8 base=5 until=1 slot=1", 8, True),
        ("v1 floor=8 prior=5 base=6 until=1 slot=1", 20, False),  # base above the prior
        ("v1 floor=5 prior=8 base=6 until=1 slot=1", 20, False),  # base above the floor
        ("v1 floor=8 prior=5 base=5 until=1 slot=1", 7, False),  # floor above MaxSize
        ("v1 floor=5 prior=8 base=5 until=1 slot=1", 7, False),  # prior above MaxSize
    ],
)
def test_decode_bounds_base_and_max_size(text, max_size, accepted):
    if accepted:
        assert decode(text, max_size).base == 5
        return
    with pytest.raises(LeaseError) as refused:
        decode(text, max_size)
    base = 6 if "base=6" in text else 5
    assert str(refused.value) == (
        f"lease tag {text!r}: base {base} above the floor, or a floor above MaxSize {max_size}"
    )


# --- Ownership -------------------------------------------------------------------------------


def test_due_at_the_expiry_and_only_above_the_base():
    lease = Lease(8, 8, 2, 1000, 0)
    held = Ownership(8, 2, lease)
    assert held.due(999) is False
    assert held.due(1000) is True
    assert held.due(1000, grace_seconds=60) is False
    assert held.due(1059, grace_seconds=60) is False
    assert held.due(1060, grace_seconds=60) is True
    assert Ownership(2, 2, Lease(2, 2, 2, 1000, 0)).due(5000) is False  # MinSize at the base
    assert Ownership(8, None, lease).due(5000) is False  # base unknown
    assert Ownership(8, 2, None).due(5000) is False  # no lease
    assert Ownership(8, 2, lease).managed is True
    assert Ownership(8, None, None).managed is False


def test_release_keeps_the_min_size_of_now_as_the_prior():
    held = Ownership(8, 2, Lease(8, 8, 2, 1000, 700))
    assert held.release() == Lease(2, 8, 2, 0, 700)


# --- judge -----------------------------------------------------------------------------------


def test_judge_a_lease_that_owns_min_size():
    tag = f"v1 floor=8 prior=8 base=2 until={NOW + 600} slot={NOW - 300}"
    assert judge(8, 20, tag, NOW, LEASE_SECONDS) == Ownership(
        8, 2, Lease(8, 8, 2, NOW + 600, NOW - 300), slot=NOW - 300
    )


def test_judge_an_unconfirmed_change_owns_the_prior_min_size():
    tag = f"v1 floor=8 prior=5 base=2 until={NOW + 600} slot={NOW}"
    assert judge(5, 20, tag, NOW, LEASE_SECONDS) == Ownership(5, 2, Lease(8, 5, 2, NOW + 600, NOW), slot=NOW)


def test_judge_adopts_a_min_size_set_elsewhere():
    tag = f"v1 floor=8 prior=8 base=2 until={NOW + 600} slot={NOW - 300}"
    assert judge(11, 20, tag, NOW, LEASE_SECONDS) == Ownership(
        11,
        11,
        None,
        adopted=True,
        note="MinSize 11 was set outside predict (its lease holds 8): adopted as the operator's MinSize",
        slot=NOW - 300,
    )


def test_judge_leaves_min_size_alone_under_an_unreadable_tag():
    assert judge(8, 20, "garbage", NOW, LEASE_SECONDS) == Ownership(
        8,
        None,
        None,
        note=(
            "warning: lease tag 'garbage' is not 'v1 floor=N prior=N base=N until=T slot=T'; "
            "MinSize 8 is left alone (delete the tag to hand it over)"
        ),
    )


def test_a_slot_up_to_60_s_ahead_is_kept_and_later_ignored():
    kept = f"v1 floor=8 prior=8 base=2 until={NOW + 600} slot={NOW + 60}"
    assert judge(8, 20, kept, NOW, LEASE_SECONDS) == Ownership(
        8, 2, Lease(8, 8, 2, NOW + 600, NOW + 60), slot=NOW + 60
    )
    ignored = f"v1 floor=8 prior=8 base=2 until={NOW + 600} slot={NOW + 61}"
    assert judge(8, 20, ignored, NOW, LEASE_SECONDS) == Ownership(
        8,
        2,
        Lease(8, 8, 2, NOW + 600, 0),
        note=f"warning: lease slot {NOW + 61} is after the clock; ignored",
        slot=0,
    )


def test_an_expiry_past_any_renewal_is_treated_as_expired():
    latest = NOW + LEASE_SECONDS + 60
    kept = f"v1 floor=8 prior=8 base=2 until={latest} slot={NOW}"
    assert judge(8, 20, kept, NOW, LEASE_SECONDS) == Ownership(8, 2, Lease(8, 8, 2, latest, NOW), slot=NOW)
    forged = f"v1 floor=8 prior=8 base=2 until={latest + 1} slot={NOW}"
    assert judge(8, 20, forged, NOW, LEASE_SECONDS) == Ownership(
        8,
        2,
        Lease(8, 8, 2, 0, NOW),
        note=(
            f"warning: lease expiry {latest + 1} is later than any renewal predict writes; treated as expired"
        ),
        slot=NOW,
    )


def test_judge_joins_every_note_when_adopting():
    tag = f"v1 floor=8 prior=8 base=2 until={NOW + 99999} slot={NOW + 999}"
    assert judge(9, 20, tag, NOW, LEASE_SECONDS) == Ownership(
        9,
        9,
        None,
        adopted=True,
        note=(
            f"warning: lease slot {NOW + 999} is after the clock; ignored; "
            f"warning: lease expiry {NOW + 99999} is later than any renewal predict writes; "
            "treated as expired; "
            "MinSize 9 was set outside predict (its lease holds 8): adopted as the operator's MinSize"
        ),
        slot=0,
    )


# --- the tags before the lease ---------------------------------------------------------------


def test_no_tag_at_all_makes_min_size_the_operators():
    assert judge(3, 20, None, NOW, LEASE_SECONDS) == Ownership(3, 3, None)
    assert judge(3, 20, None, NOW, LEASE_SECONDS, None, "7") == Ownership(3, 3, None)


@pytest.mark.parametrize(
    ("min_size", "base_tag", "applied_tag", "base"),
    [
        (8, "2", "8", 2),  # the applied floor
        (2, "2", "8", 2),  # MinSize at the base
        (8, "2", None, 2),  # above the base, no applied tag
        (8, " 2\n", " 8 ", 2),  # whitespace around the values
        (20, "20", None, 20),  # base at MaxSize
        (8, "2", "21", 2),  # an applied tag above MaxSize is unknown: above the base is ours
        (8, "2", "x", 2),
    ],
)
def test_legacy_tags_hand_over_an_expired_lease(min_size, base_tag, applied_tag, base):
    assert judge(min_size, 20, None, NOW, LEASE_SECONDS, base_tag, applied_tag) == Ownership(
        min_size, base, Lease(min_size, min_size, base, 0, 0)
    )


@pytest.mark.parametrize(
    ("min_size", "base_tag", "applied_tag"),
    [
        (9, "2", "8"),  # neither the base nor the applied floor
        (1, "2", None),  # below the base
        (1, "2", "1"),  # the applied floor, below the base
    ],
)
def test_legacy_tags_adopt_a_min_size_set_elsewhere(min_size, base_tag, applied_tag):
    assert judge(min_size, 20, None, NOW, LEASE_SECONDS, base_tag, applied_tag) == Ownership(
        min_size,
        min_size,
        None,
        adopted=True,
        note=f"MinSize {min_size} was set outside predict: adopted as the operator's MinSize",
    )


@pytest.mark.parametrize("base_tag", ["21", "-1", "1234567", "x", "", "2.0", "０"])
def test_an_unusable_legacy_base_leaves_min_size_alone(base_tag):
    assert judge(8, 20, None, NOW, LEASE_SECONDS, base_tag, "8") == Ownership(
        8,
        None,
        None,
        note=(
            f"warning: tag base-min-size {base_tag!r} is not a size in [0, MaxSize 20]; "
            "ignored, MinSize 8 is left alone"
        ),
    )


def test_a_legacy_size_has_at_most_six_digits():
    assert judge(123456, 10**7, None, NOW, LEASE_SECONDS, "123456", None) == Ownership(
        123456, 123456, Lease(123456, 123456, 123456, 0, 0)
    )
    assert judge(8, 10**7, None, NOW, LEASE_SECONDS, "1234567", None).base is None


def test_judge_joins_both_warnings_on_a_lease_it_keeps():
    tag = f"v1 floor=8 prior=8 base=2 until={NOW + 99999} slot={NOW + 999}"
    assert judge(8, 20, tag, NOW, LEASE_SECONDS) == Ownership(
        8,
        2,
        Lease(8, 8, 2, 0, 0),
        note=(
            f"warning: lease slot {NOW + 999} is after the clock; ignored; "
            f"warning: lease expiry {NOW + 99999} is later than any renewal predict writes; "
            "treated as expired"
        ),
        slot=0,
    )
