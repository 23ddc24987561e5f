"""Firings that do not come from the clock: events, webhooks, `trigger fire`.

Each is a unique (trigger, slot_key) row first: a journal event re-announced,
a webhook replayed with its Idempotency-Key, never fires twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import (
    ITEM_APPROVAL_METHODS,
    LEGACY_APPROVAL_METHODS,
    TURN_COMPLETED,
)
from lanes.journal.eventstore import EventRow
from lanes.services.audit import audit_record
from triggers.models import Trigger, TriggerFiring
from triggers.services.firing import firing_run
from triggers.services.manage import with_trigger

APPROVAL_REQUESTS = ITEM_APPROVAL_METHODS | LEGACY_APPROVAL_METHODS
EVENT_METHODS = {TURN_COMPLETED, *APPROVAL_REQUESTS}


def firing_record(
    *,
    trigger: Trigger,
    slot_key: str,
    slot_at: datetime,
    reason: str,
    context: dict[str, Any] | None = None,
) -> TriggerFiring | None:
    """A pending firing, or None when that slot already has one."""
    try:
        with transaction.atomic():
            return TriggerFiring.objects.create(
                trigger=trigger,
                slot_key=slot_key,
                slot_at=slot_at,
                reason=reason,
                context=context or {},
            )
    except IntegrityError:
        return None


def trigger_fire(*, trigger: Trigger, origin: Origin) -> TriggerFiring:
    """Fire once now, through the ledger and the guards (paused or not)."""
    now = timezone.now()
    firing = firing_record(
        trigger=trigger,
        slot_key=f"manual:{uuid.uuid4().hex}",
        slot_at=now,
        reason=TriggerFiring.Reason.MANUAL,
    )
    assert firing is not None  # a fresh uuid never conflicts
    audit_record(
        op="trigger-fire-now",
        lane=trigger.lane,
        detail=f"firing {firing.pk}",
        origin=with_trigger(origin, trigger),
    )
    firing_run(firing_id=firing.pk)
    firing.refresh_from_db()
    return firing


def event_matches(trigger: Trigger, row: EventRow) -> dict[str, Any] | None:
    """The firing context when `row` is an event `trigger` waits for."""
    if trigger.kind == Trigger.Kind.TURN_COMPLETED and row.method == TURN_COMPLETED:
        turn = (row.params or {}).get("turn") or {}
        status = str(turn.get("status") or "")
        if trigger.turn_status not in ("any", status):
            return None
        return {
            "turn": {"id": turn.get("id") or row.turn_id, "status": status},
            "event": {"method": row.method, "seq": row.seq, "thread_id": row.thread_id},
        }
    if (
        trigger.kind == Trigger.Kind.APPROVAL_PENDING
        and row.method in APPROVAL_REQUESTS
    ):
        return {
            "turn": {"id": row.turn_id},
            "event": {
                "method": row.method,
                "seq": row.seq,
                "thread_id": row.thread_id,
                "request_id": row.request_id,
            },
        }
    return None


def events_record(*, rows: list[EventRow]) -> list[int]:
    """Pending firings for the event triggers these journal rows satisfy.

    Runs on the worker's ORM thread: a query only when the batch holds a
    relevant event, inserts only, no app-server call.
    """
    relevant = [r for r in rows if r.method in EVENT_METHODS]
    if not relevant:
        return []
    threads = {r.thread_id for r in relevant}
    triggers = list(
        Trigger.objects.filter(
            enabled=True,
            kind__in=(Trigger.Kind.TURN_COMPLETED, Trigger.Kind.APPROVAL_PENDING),
            on_lane__thread_id__in=threads,
        ).select_related("on_lane")
    )
    if not triggers:
        return []
    now = timezone.now()
    firings = []
    for row in relevant:
        for trigger in triggers:
            assert trigger.on_lane is not None
            if trigger.on_lane.thread_id != row.thread_id:
                continue
            context = event_matches(trigger, row)
            if context is None:
                continue
            firings.append(
                TriggerFiring(
                    trigger=trigger,
                    slot_key=f"event:{row.thread_id}:{row.seq}",
                    slot_at=row.received_at,
                    reason=TriggerFiring.Reason.EVENT,
                    context=context,
                    created_at=now,
                )
            )
    if not firings:
        return []
    TriggerFiring.objects.bulk_create(firings, ignore_conflicts=True)
    return list(
        TriggerFiring.objects.filter(
            trigger_id__in={f.trigger_id for f in firings},
            slot_key__in={f.slot_key for f in firings},
            outcome=TriggerFiring.Outcome.PENDING,
        ).values_list("id", flat=True)
    )
