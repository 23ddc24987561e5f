"""When time-based triggers are due: pure functions of a spec and `now`.

No ORM and no clock of their own, so tests drive them with a fake `now`.
Slots are whole seconds: interval slots step from an anchor, cron slots are
croniter's. The tick claims slots up to LOOKAHEAD ahead and the firing runs
at the slot itself (a celery ETA), so lateness does not depend on where in
the second beat happens to tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# How far ahead the tick claims slots (one beat period).
LOOKAHEAD = timedelta(seconds=1)
# A slot later than this when claimed was missed (daemon down, beat stalled):
# it follows the trigger's catch-up policy instead of firing on its own.
LATE_GRACE = timedelta(seconds=3)
# A pending firing this far past its slot lost its task (restart, broker):
# it runs late only when nothing newer of its trigger was claimed since.
STALE_PENDING = timedelta(seconds=10)
# Cron slots examined per trigger per tick before jumping to "now".
CRON_SCAN_LIMIT = 64


@dataclass(frozen=True)
class Spec:
    kind: str  # "interval" | "cron"
    seconds: int | None = None
    cron: str = ""
    tz: str = "UTC"


@dataclass
class Plan:
    # (slot time, reason) to claim, in order; reason "time" or "catch_up".
    slots: list[tuple[datetime, str]] = field(default_factory=list)
    # Missed slots not fired (catch-up "skip"), and the latest of them.
    skipped: int = 0
    skipped_slot: datetime | None = None
    next_due: datetime | None = None


def ceil_second(when: datetime) -> datetime:
    whole = when.replace(microsecond=0)
    return whole if whole == when else whole + timedelta(seconds=1)


def cron_problem(expression: str) -> str:
    """Why `expression` is no 5-field cron expression, or ""."""
    if len(expression.split()) != 5:
        return "needs 5 fields: minute hour day-of-month month day-of-week"
    if not croniter.is_valid(expression):
        return "does not parse"
    return ""


def tz_problem(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name (e.g. UTC, Europe/Paris)"
    return ""


def cron_after(spec: Spec, when: datetime) -> datetime:
    """The first cron slot strictly after `when`, timezone-aware."""
    local = when.astimezone(ZoneInfo(spec.tz))
    nxt: datetime = croniter(spec.cron, local).get_next(datetime)
    return nxt.astimezone(when.tzinfo)


def cron_at_or_before(spec: Spec, when: datetime) -> datetime:
    local = when.astimezone(ZoneInfo(spec.tz))
    prev: datetime = croniter(spec.cron, local + timedelta(seconds=1)).get_prev(
        datetime
    )
    return prev.astimezone(when.tzinfo)


def first_due(spec: Spec, now: datetime) -> datetime:
    """The first slot of a new (or resumed) trigger: interval fires at once."""
    if spec.kind == "interval":
        return ceil_second(now)
    return cron_after(spec, now - timedelta(seconds=1))


def next_slot(spec: Spec, slot: datetime) -> datetime:
    if spec.kind == "interval":
        assert spec.seconds
        return slot + timedelta(seconds=spec.seconds)
    return cron_after(spec, slot)


def latest_slot_at_or_before(spec: Spec, first: datetime, when: datetime) -> datetime:
    """The last slot <= `when` of the series starting at `first` (<= when)."""
    if spec.kind == "interval":
        assert spec.seconds
        steps = math.floor((when - first).total_seconds() / spec.seconds)
        return first + timedelta(seconds=steps * spec.seconds)
    return max(first, cron_at_or_before(spec, when))


def plan_slots(
    spec: Spec,
    *,
    next_due: datetime,
    now: datetime,
    catch_up: str,
    until: datetime | None = None,
) -> Plan:
    """The slots to claim at `now`, and the next slot to wait for.

    On-time slots (not older than LATE_GRACE) up to now + LOOKAHEAD each get
    a firing. Older ones were missed: "once" fires one catch-up firing for
    all of them (at the latest missed slot) and drops the on-time slots that
    are already due, so a restart never bursts; "skip" fires none of them.
    """
    horizon = now + LOOKAHEAD
    plan = Plan(next_due=next_due)
    if next_due > horizon or expired(until, next_due):
        return plan
    late_edge = now - LATE_GRACE
    cursor = next_due
    if cursor < late_edge:
        last_missed = latest_slot_at_or_before(spec, cursor, late_edge)
        # Slots after the missed ones but already due would be a burst.
        after = next_slot(spec, last_missed)
        while after <= now:
            last_missed = after
            after = next_slot(spec, after)
        if until is not None and last_missed > until:
            last_missed = latest_slot_at_or_before(spec, cursor, until)
        if catch_up == "once":
            plan.slots.append((last_missed, "catch_up"))
        else:
            plan.skipped = 1
            plan.skipped_slot = last_missed
        cursor = after
    scanned = 0
    while cursor <= horizon and scanned < CRON_SCAN_LIMIT:
        if until is not None and cursor > until:
            break
        plan.slots.append((cursor, "time"))
        cursor = next_slot(spec, cursor)
        scanned += 1
    plan.next_due = cursor
    return plan


def expired(until: datetime | None, next_due: datetime | None) -> bool:
    """No slot is left before `until`."""
    return until is not None and next_due is not None and next_due > until


def idle_slot(
    *,
    seconds: int,
    lane_idle: bool,
    last_event_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """The idle_for slot due at `now`: one per idle period, keyed by its start."""
    if not lane_idle or last_event_at is None:
        return None
    slot = last_event_at + timedelta(seconds=seconds)
    return slot if slot <= now else None
