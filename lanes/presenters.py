"""JSON shapes of lanes and threads, matching the tool our users come from."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from dispatchsite.core.config import Policy, load_policy
from lanes.appserver.protocol import thread_source, thread_status
from lanes.models import ATTACHED_LOCK_REASON, Lane

WRITE_CAPABILITIES = (
    "send",
    "context",
    "steer",
    "queue",
    "interject",
    "goal_set",
    "goal_clear",
    "stop",
    "fork",
    "rollback",
    "compact",
)
PREVIEW_CHARS = 80


def lane_ref(lane: Lane, policy: Policy | None = None) -> dict[str, Any]:
    policy = policy or load_policy()
    writable = lane.writable(policy)
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
        "goal": goal_view(lane.goal),
        "created_at": lane.created_at.isoformat(),
        "last_event_at": lane.last_event_at.isoformat() if lane.last_event_at else None,
    }


def unix_iso(value: Any) -> str | None:
    """Codex timestamps are unix seconds; outputs use ISO 8601 in UTC."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC).isoformat()


def goal_view(goal: dict[str, Any] | None) -> dict[str, Any] | None:
    """A Codex ThreadGoal (camelCase, unix seconds) in dispatch's shape."""
    if not goal:
        return None
    return {
        "thread_id": goal.get("threadId"),
        "objective": goal.get("objective"),
        "status": goal.get("status"),
        "tokens_used": goal.get("tokensUsed"),
        "time_used_seconds": goal.get("timeUsedSeconds"),
        "created_at": unix_iso(goal.get("createdAt")),
        "updated_at": unix_iso(goal.get("updatedAt")),
        "token_budget": goal.get("tokenBudget"),
    }


def preview_text(text: str | None) -> str:
    collapsed = re.sub(r"\s+", " ", text or "").strip()
    if len(collapsed) <= PREVIEW_CHARS:
        return collapsed
    return collapsed[: PREVIEW_CHARS - 1] + "…"


def discovery_row(thread: dict[str, Any], *, archived: bool) -> dict[str, Any]:
    return {
        "id": thread.get("id"),
        "name": thread.get("name"),
        "preview": preview_text(thread.get("preview")),
        "cwd": thread.get("cwd"),
        "status": thread_status(thread),
        "source": thread_source(thread),
        "ephemeral": bool(thread.get("ephemeral")),
        "model": thread.get("model"),
        "archived": archived,
        "created_at": unix_iso(thread.get("createdAt")),
        "updated_at": unix_iso(thread.get("updatedAt")),
    }


def thread_action_ref(
    *, lane: Lane | None, thread_id: str, status: str, cwd: str | None
) -> dict[str, Any]:
    """ThreadActionRef: the result of rename/archive/restore on any thread."""
    if lane is not None:
        return {
            "ref": lane.ref,
            "id": lane.thread_id,
            "handle": lane.handle,
            "managed": True,
            "source": lane.source,
            "status": lane.status,
            "cwd": lane.cwd,
        }
    return {
        "ref": None,
        "id": thread_id,
        "handle": None,
        "managed": False,
        "source": "unmanaged",
        "status": status,
        "cwd": cwd,
    }
