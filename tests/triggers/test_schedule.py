"""Due slots and catch-up as pure functions of a spec and a fake `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from triggers.schedule import (
    LOOKAHEAD,
    Spec,
    cron_problem,
    first_due,
    idle_slot,
    plan_slots,
    tz_problem,
)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
EVERY_2S = Spec(kind="interval", seconds=2)


def s(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_it_fires_a_new_interval_trigger_at_the_next_whole_second() -> None:
    assert first_due(EVERY_2S, T0 + s(0.3)) == T0 + s(1)
    assert first_due(EVERY_2S, T0) == T0


def test_it_claims_on_time_slots_up_to_one_lookahead_ahead() -> None:
    plan = plan_slots(EVERY_2S, next_due=T0 + s(1), now=T0 + s(0.2), catch_up="once")
    assert plan.slots == [(T0 + s(1), "time")]
    assert plan.next_due == T0 + s(3)
    nothing = plan_slots(EVERY_2S, next_due=T0 + s(3), now=T0 + s(1.5), catch_up="once")
    assert nothing.slots == [] and nothing.next_due == T0 + s(3)
    assert LOOKAHEAD == s(1)


def test_it_fires_every_slot_of_a_briefly_late_tick() -> None:
    every_1s = Spec(kind="interval", seconds=1)
    plan = plan_slots(every_1s, next_due=T0, now=T0 + s(2), catch_up="once")
    assert [w for w, _ in plan.slots] == [T0, T0 + s(1), T0 + s(2), T0 + s(3)]
    assert {r for _, r in plan.slots} == {"time"}


def test_it_catches_up_once_for_all_missed_slots_never_a_burst() -> None:
    # Down for a minute: 30 slots missed, one catch-up firing, then on schedule.
    now = T0 + s(60.4)
    plan = plan_slots(EVERY_2S, next_due=T0, now=now, catch_up="once")
    assert plan.slots == [(T0 + s(60), "catch_up")]
    assert plan.next_due == T0 + s(62)


def test_it_skips_missed_slots_with_catch_up_skip() -> None:
    now = T0 + s(60.4)
    plan = plan_slots(EVERY_2S, next_due=T0, now=now, catch_up="skip")
    assert plan.slots == []
    assert plan.skipped == 1 and plan.skipped_slot == T0 + s(60)
    assert plan.next_due == T0 + s(62)


def test_it_claims_the_next_slot_after_a_catch_up_within_the_lookahead() -> None:
    now = T0 + s(61.5)
    plan = plan_slots(EVERY_2S, next_due=T0, now=now, catch_up="once")
    assert plan.slots == [(T0 + s(60), "catch_up"), (T0 + s(62), "time")]


def test_it_stops_at_until() -> None:
    until = T0 + s(3)
    plan = plan_slots(
        EVERY_2S, next_due=T0, now=T0 + s(10.5), catch_up="once", until=until
    )
    assert plan.slots == [(T0 + s(2), "catch_up")]
    later = plan_slots(
        EVERY_2S, next_due=T0 + s(4), now=T0 + s(4), catch_up="once", until=until
    )
    assert later.slots == []


def test_it_follows_cron_in_its_time_zone() -> None:
    spec = Spec(kind="cron", cron="0 9 * * *", tz="Europe/Paris")
    due = first_due(spec, T0)  # 12:00 UTC = 13:00 Paris: next 09:00 Paris
    assert due == datetime(2030, 1, 2, 8, 0, tzinfo=UTC)
    plan = plan_slots(spec, next_due=due, now=due - s(0.5), catch_up="once")
    assert plan.slots == [(due, "time")]
    assert plan.next_due == datetime(2030, 1, 3, 8, 0, tzinfo=UTC)


def test_it_catches_up_a_week_of_cron_slots_in_one_firing() -> None:
    spec = Spec(kind="cron", cron="*/5 * * * *")
    now = T0 + timedelta(days=7, seconds=100)
    plan = plan_slots(spec, next_due=T0, now=now, catch_up="once")
    assert plan.slots == [(T0 + timedelta(days=7), "catch_up")]
    assert plan.next_due == T0 + timedelta(days=7, minutes=5)


def test_it_names_what_is_wrong_with_a_cron_or_a_zone() -> None:
    assert cron_problem("* * *").startswith("needs 5 fields")
    assert cron_problem("61 * * * *") == "does not parse"
    assert cron_problem("*/5 * * * *") == ""
    assert tz_problem("Mars/Olympus")
    assert tz_problem("Europe/Paris") == ""


def test_it_fires_idle_for_once_per_idle_period() -> None:
    last = T0
    assert (
        idle_slot(seconds=30, lane_idle=True, last_event_at=last, now=T0 + s(29))
        is None
    )
    slot = idle_slot(seconds=30, lane_idle=True, last_event_at=last, now=T0 + s(31))
    assert slot == T0 + s(30)
    # Still the same idle period later: the same slot (the ledger dedupes it).
    assert (
        idle_slot(seconds=30, lane_idle=True, last_event_at=last, now=T0 + s(90))
        == slot
    )
    assert (
        idle_slot(seconds=30, lane_idle=False, last_event_at=last, now=T0 + s(90))
        is None
    )
