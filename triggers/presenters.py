"""JSON shapes of triggers and firings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from triggers.models import Trigger


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def trigger_view(trigger: Trigger) -> dict[str, Any]:
    """A trigger as every surface shows it; never its webhook secret."""
    lane = trigger.lane
    on_lane = trigger.on_lane
    return {
        "id": trigger.id,
        "name": trigger.name,
        "lane": lane.ref,
        "lane_handle": lane.handle,
        "when": trigger.kind,
        "seconds": trigger.seconds,
        "cron": trigger.cron or None,
        "tz": trigger.tz,
        "on": on_lane.ref if on_lane is not None else None,
        "turn_status": trigger.turn_status
        if trigger.kind == Trigger.Kind.TURN_COMPLETED
        else None,
        "action": trigger.action,
        "text": trigger.text,
        "guards": {
            "idle_only": trigger.idle_only,
            "min_interval": trigger.min_interval,
            "dedupe": trigger.dedupe,
            "max_firings": trigger.max_firings,
            "until": iso(trigger.until),
            "catch_up": trigger.catch_up,
            "max_failures": trigger.max_failures,
            "max_chain": trigger.max_chain,
        },
        "enabled": trigger.enabled,
        "paused_reason": trigger.paused_reason or None,
        "next_due_at": iso(trigger.next_due_at) if trigger.enabled else None,
        "last_fired_at": iso(trigger.last_fired_at),
        "last_outcome": trigger.last_outcome or None,
        "fired_count": trigger.fired_count,
        "consecutive_failures": trigger.consecutive_failures,
        "created_at": iso(trigger.created_at),
    }
