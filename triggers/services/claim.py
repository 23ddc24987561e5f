"""Claiming due slots: what the one beat entry does every second.

Claims are unique (trigger, slot_key) rows inserted with ignore-conflicts,
and next_due_at advances by a conditional UPDATE: two ticks that race (a
duplicated beat, a second beat, a retried task) insert the same rows once
and only one of them moves the schedule. The firing itself runs later, at
its slot, from the row (services/firing.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction

from lanes.models import Lane
from triggers.models import Trigger, TriggerFiring
from triggers.schedule import (
    LOOKAHEAD,
    STALE_PENDING,
    expired,
    idle_slot,
    plan_slots,
)
from triggers.services.manage import TIME_KINDS, schedule_spec, trigger_pause_self

Reason = TriggerFiring.Reason
# Longer than any delivery may take (an interject waits 10 s for the turn).
STUCK_RUNNING = timedelta(minutes=5)


def slot_key(when: datetime) -> str:
    return "t:" + when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Claimed:
    # slot time -> firing ids to run then
    due: dict[datetime, list[int]] = field(default_factory=lambda: defaultdict(list))
    considered: int = 0

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.due.values())


def claim_time_slots(*, now: datetime) -> tuple[list[TriggerFiring], list[Trigger]]:
    """New firing rows for due interval/cron slots, and expired triggers."""
    rows: list[TriggerFiring] = []
    ended: list[Trigger] = []
    moves: list[tuple[str, datetime, datetime]] = []
    due = Trigger.objects.filter(
        enabled=True, kind__in=TIME_KINDS, next_due_at__lte=now + LOOKAHEAD
    ).only("id", "kind", "seconds", "cron", "tz", "next_due_at", "until", "catch_up")
    for trigger in due:
        assert trigger.next_due_at is not None
        plan = plan_slots(
            schedule_spec(trigger),
            next_due=trigger.next_due_at,
            now=now,
            catch_up=trigger.catch_up,
            until=trigger.until,
        )
        for when, reason in plan.slots:
            rows.append(
                TriggerFiring(
                    trigger_id=trigger.pk,
                    slot_key=slot_key(when),
                    slot_at=when,
                    reason=reason,
                    created_at=now,
                )
            )
        if plan.skipped_slot is not None:
            rows.append(
                TriggerFiring(
                    trigger_id=trigger.pk,
                    slot_key=slot_key(plan.skipped_slot),
                    slot_at=plan.skipped_slot,
                    reason=Reason.CATCH_UP,
                    outcome=TriggerFiring.Outcome.SKIPPED,
                    detail="catch_up: missed slots skipped (--catch-up skip)",
                    created_at=now,
                    finished_at=now,
                )
            )
        if plan.next_due is not None and plan.next_due != trigger.next_due_at:
            moves.append((trigger.pk, trigger.next_due_at, plan.next_due))
        # Paused once nothing is left to run, so its last slots still fire.
        if not plan.slots and expired(trigger.until, plan.next_due):
            ended.append(trigger)
    schedules_advance(moves)
    return rows, ended


def schedules_advance(moves: list[tuple[str, datetime, datetime]]) -> None:
    """next_due_at old -> new for each trigger, in one executemany.

    Each row moves only if it still holds the old value: of two racing
    ticks, one advances the schedule. Raw SQL because building hundreds of
    ORM updates (or a CASE expression) a second costs more than the writes.
    """
    if not moves:
        return
    table = Trigger._meta.db_table
    column = Trigger._meta.get_field("next_due_at").column
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {column} = %s WHERE id = %s AND {column} = %s",
            [(adapt(new), pk, adapt(old)) for pk, old, new in moves],
        )


def claim_idle_slots(*, now: datetime) -> list[TriggerFiring]:
    rows = []
    for trigger in Trigger.objects.filter(
        enabled=True, kind=Trigger.Kind.IDLE_FOR
    ).select_related("lane"):
        lane = trigger.lane
        assert trigger.seconds is not None
        slot = idle_slot(
            seconds=trigger.seconds,
            lane_idle=lane.status == Lane.Status.IDLE and not lane.active_turn_id,
            last_event_at=lane.last_event_at,
            now=now,
        )
        if slot is not None:
            rows.append(
                TriggerFiring(
                    trigger_id=trigger.pk,
                    slot_key="idle:" + slot.isoformat(),
                    slot_at=slot,
                    reason=Reason.TIME,
                    created_at=now,
                )
            )
    return rows


def triggers_claim(*, now: datetime) -> Claimed:
    """Claim every slot due by now + LOOKAHEAD; return the firings by slot."""
    with transaction.atomic():
        rows, ended = claim_time_slots(now=now)
        rows += claim_idle_slots(now=now)
        TriggerFiring.objects.bulk_create(rows, ignore_conflicts=True)
    for trigger in ended:
        trigger_pause_self(trigger=trigger, reason="no slot left before --until")
    claimed = Claimed(considered=len(rows))
    if rows:
        # This tick's rows carry its `now`; a racing tick that inserted the
        # same slots first runs its own.
        pending = TriggerFiring.objects.filter(created_at=now, outcome="pending")
        for firing_id, slot_at in pending.values_list("id", "slot_at"):
            claimed.due[slot_at].append(firing_id)
    # A firing cut off mid-delivery (its process died) is never retried:
    # the message may have gone out.
    TriggerFiring.objects.filter(
        outcome="running", started_at__lt=now - STUCK_RUNNING
    ).update(
        outcome="failed",
        detail="interrupted: the process running it stopped",
        finished_at=now,
    )
    # Rows whose task was lost run now (or are skipped: see firing.stale).
    stale = TriggerFiring.objects.filter(
        outcome="pending", slot_at__lt=now - STALE_PENDING
    ).values_list("id", flat=True)[:1000]
    if stale:
        claimed.due[now].extend(stale)
    return claimed
