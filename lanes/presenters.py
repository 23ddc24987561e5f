"""JSON shapes of lanes, matching the tool our users come from."""

from __future__ import annotations

from typing import Any

from dispatchsite.config import Policy, load_policy
from lanes.models import Lane

WRITE_CAPABILITIES = (
    "send", "context", "steer", "queue", "interject", "goal_set", "goal_clear",
    "stop", "fork", "rollback", "compact",
)
ATTACHED_LOCK_REASON = (
    "attached thread; Dispatch does not own this App Server thread "
    "(enable policy.allow_attached_writes to override)"
)


def lane_writable(lane: Lane, policy: Policy) -> bool:
    return lane.source == Lane.Source.OWN or policy.allow_attached_writes


def lane_ref(lane: Lane, policy: Policy | None = None) -> dict[str, Any]:
    policy = policy or load_policy()
    writable = lane_writable(lane, policy)
    capabilities = {"read": True, "sync": True, "tail": True}
    capabilities.update({name: writable for name in WRITE_CAPABILITIES})
    return {
        "ref": lane.ref,
        "id": lane.thread_id,
        "handle": lane.handle,
        "title": lane.title,
        "source": lane.source,
        "status": lane.status,
        "cwd": lane.cwd,
        "host": lane.host,
        "writable": writable,
        "capabilities": capabilities,
        "write_locked_reason": None if writable else ATTACHED_LOCK_REASON,
    }


def lane_identity(lane: Lane, policy: Policy | None = None) -> dict[str, Any]:
    return {"lane": lane.thread_id, "managed": True, **lane_ref(lane, policy)}


def lane_model(lane: Lane) -> dict[str, Any]:
    saved = lane.runtime_settings or {}
    return {
        "provider": lane.model_provider or None,
        "model": saved.get("model") or lane.model or None,
        "reasoning_effort": saved.get("effort"),
    }


def lane_list_item(lane: Lane, policy: Policy | None = None) -> dict[str, Any]:
    return {
        **lane_ref(lane, policy),
        "latest_turn": lane.latest_turn,
        "active_turn_id": lane.active_turn_id or None,
        "model": lane_model(lane),
        "goal": lane.goal,
        "created_at": lane.created_at.isoformat(),
        "last_event_at": lane.last_event_at.isoformat() if lane.last_event_at else None,
    }
