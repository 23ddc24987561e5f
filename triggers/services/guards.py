"""The guards a firing passes before delivery, and what its text may use.

Pure reads: the caller decides what a guard's verdict does (skip, or pause
the trigger for "pause:" verdicts).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q

from lanes.models import Lane, QueuedMessage
from triggers.models import Trigger, TriggerFiring
from triggers.schedule import LATE_GRACE

Outcome = TriggerFiring.Outcome


def render_context(
    trigger: Trigger, firing: TriggerFiring, now: datetime
) -> dict[str, Any]:
    context = firing.context or {}
    return {
        "trigger": trigger.name,
        "trigger_id": trigger.id,
        "lane": trigger.lane.handle,
        "fired_at": now.isoformat(),
        "slot": firing.slot_at.isoformat(),
        "turn": context.get("turn") or {},
        "event": context.get("event") or {},
        "payload": context.get("payload"),
    }


def chain_depth(trigger: Trigger, firing: TriggerFiring) -> int:
    """1 + the chain of the firing that started the turn this one reacts to."""
    turn_id = ((firing.context or {}).get("turn") or {}).get("id")
    if not turn_id:
        return 0
    queued = QueuedMessage.objects.filter(turn_id=turn_id).values("id")
    cause = (
        TriggerFiring.objects.filter(trigger=trigger, outcome=Outcome.FIRED)
        .filter(Q(turn_id=turn_id) | Q(queued_message_id__in=queued))
        .order_by("-id")
        .first()
    )
    return cause.chain + 1 if cause is not None else 0


def stale(trigger: Trigger, firing: TriggerFiring, now: datetime) -> bool:
    if firing.reason not in (TriggerFiring.Reason.TIME, TriggerFiring.Reason.CATCH_UP):
        return False
    # Later than a tick's grace: the schedule has moved on (catch-up covers
    # it) unless nothing newer was claimed.
    if now - firing.slot_at <= LATE_GRACE:
        return False
    newer = TriggerFiring.objects.filter(trigger=trigger, id__gt=firing.pk).exists()
    return newer or trigger.catch_up == Trigger.CatchUp.SKIP


def guard_problem(
    trigger: Trigger, firing: TriggerFiring, lane: Lane, now: datetime
) -> tuple[str, str]:
    """(guard, why) that stops this firing, or ("", ""); "pause:" ones pause."""
    manual = firing.reason == TriggerFiring.Reason.MANUAL
    if not trigger.enabled and not manual:
        return "paused", trigger.paused_reason or "the trigger is paused"
    if lane.status == Lane.Status.ARCHIVED:
        return "pause:lane_archived", f"lane {lane.ref} (@{lane.title}) is archived"
    if stale(trigger, firing, now):
        return "missed", "ran after newer slots were claimed (daemon down?)"
    if trigger.until is not None and firing.slot_at > trigger.until and not manual:
        return "pause:until", f"past --until {trigger.until.isoformat()}"
    if trigger.max_firings is not None and trigger.fired_count >= trigger.max_firings:
        return "pause:max_firings", f"fired {trigger.fired_count} times (--max-firings)"
    if trigger.kind == Trigger.Kind.TURN_COMPLETED:
        firing.chain = chain_depth(trigger, firing)
        if firing.chain > trigger.max_chain:
            return "pause:max_chain", (
                f"reacted to its own firing's turn {firing.chain} times in a row "
                f"(--max-chain {trigger.max_chain})"
            )
    if trigger.idle_only and (lane.active_turn_id or lane.status != Lane.Status.IDLE):
        return "idle_only", f"lane {lane.ref} is {lane.status}"
    if trigger.min_interval and trigger.last_fired_at is not None:
        since = now - trigger.last_fired_at
        if since < timedelta(seconds=trigger.min_interval):
            return "min_interval", f"last fired {since.total_seconds():.1f} s ago"
    return "", ""
