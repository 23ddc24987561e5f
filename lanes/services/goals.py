"""Thread goals: read, set, clear, and the history of every goal a lane had.

The history (LaneGoal rows) follows two sources: the answers to our own
thread/goal/set and /clear (which know who asked), and the app-server's
thread/goal/updated and /cleared notifications, which the journal
announces (`goal_history_follow`) and which carry the usage and the goals
Codex made by itself. Both upsert the lane's one current row, so the
order in which they arrive does not matter.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatchsite.core.errors import ValidationError
from dispatchsite.core.origin import Origin
from lanes.journal.dispatch_events import (
    GOAL_CLEARED,
    GOAL_SET,
    lane_event,
    origin_label,
)
from lanes.journal.eventstore import EventRow
from lanes.models import Lane, LaneGoal
from lanes.services.appserver import lane_rpc, rpc
from lanes.services.audit import audit_failures, audit_record
from lanes.services.authority import lane_prepare_write
from lanes.worker import gateway


def goal_set_remote(
    *,
    lane: Lane,
    objective: str | None,
    status: str | None = None,
    token_budget: int | None = None,
    origin: Origin | None = None,
) -> dict[str, Any] | None:
    params: dict[str, Any] = {"threadId": lane.thread_id}
    if objective is not None:
        params["objective"] = objective
    if status is not None:
        params["status"] = status
    if token_budget is not None:
        params["tokenBudget"] = token_budget
    goal = lane_rpc(lane, "thread/goal/set", params).get("goal")
    Lane.objects.filter(pk=lane.pk).update(goal=goal)
    lane.goal = goal
    if goal:
        lane_goal_observe(lane=lane, goal=goal, origin=origin)
        if origin is not None:
            lane_event(lane, GOAL_SET, origin, goal=goal)
    return goal


def goal_fetch(*, lane: Lane) -> dict[str, Any] | None:
    with gateway.rpc_errors():
        result = rpc(lane, "thread/goal/get", {"threadId": lane.thread_id})
    goal = (result or {}).get("goal")
    if goal != lane.goal:
        # Keep the mirror honest for lanes whose events this host never sees.
        Lane.objects.filter(pk=lane.pk).update(goal=goal)
        lane.goal = goal
    return goal


def lane_goal_set(
    *,
    lane: Lane,
    objective: str | None,
    status: str | None,
    token_budget: int | None,
    origin: Origin,
) -> dict[str, Any] | None:
    with audit_failures(op="goal-set", lane=lane, origin=origin):
        if objective is None and status is None and token_budget is None:
            raise ValidationError(
                "goal set needs an objective, --status or --token-budget",
                hint=f'e.g. `dispatch goal set {lane.ref} "ship the fix"`',
            )
        if objective is not None:
            objective = objective.strip()
            if not objective:
                raise ValidationError("the goal objective is empty", hint="pass text")
        lane_prepare_write(lane)
        if objective is None and goal_fetch(lane=lane) is None:
            raise ValidationError(
                f"lane {lane.ref} has no goal yet: an objective is required to "
                "create one (status and token_budget only update an existing goal)",
                hint=f'pass an objective: `dispatch goal set {lane.ref} "..."`',
            )
        with gateway.rpc_errors():
            goal = goal_set_remote(
                lane=lane,
                objective=objective,
                status=status,
                token_budget=token_budget,
                origin=origin,
            )
    parts = [
        f"{k}={v}"
        for k, v in (("status", status), ("token_budget", token_budget))
        if v is not None
    ]
    audit_record(
        op="goal-set",
        lane=lane,
        detail=" ".join([objective[:100] if objective else "", *parts]).strip(),
        origin=origin,
    )
    return goal


def lane_goal_clear(*, lane: Lane, origin: Origin) -> bool:
    with audit_failures(op="goal-clear", lane=lane, origin=origin):
        lane_prepare_write(lane)
        with gateway.rpc_errors():
            result = lane_rpc(lane, "thread/goal/clear", {"threadId": lane.thread_id})
        Lane.objects.filter(pk=lane.pk).update(goal=None)
        lane.goal = None
    cleared = bool((result or {}).get("cleared", True))
    lane_goal_mark_cleared(lane=lane, origin=origin)
    lane_event(lane, GOAL_CLEARED, origin, cleared=cleared)
    audit_record(
        op="goal-clear",
        lane=lane,
        detail="cleared" if cleared else "no goal",
        origin=origin,
    )
    return cleared


# -- history -----------------------------------------------------------------------


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def lane_goal_observe(
    *, lane: Lane, goal: dict[str, Any], origin: Origin | None = None
) -> LaneGoal:
    """Record what Codex says the lane's goal is now; a new goal starts a row.

    A goal is new when Codex reports another createdAt or objective than the
    current row's; the current row then ends as "replaced". `origin` is who
    set it through dispatch (None for a notification).
    """
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return goal_observe_once(lane=lane, goal=goal, origin=origin)
        except IntegrityError:
            # Another process opened the row first: update that one instead.
            continue
    return goal_observe_once(lane=lane, goal=goal, origin=origin)


def goal_observe_once(
    *, lane: Lane, goal: dict[str, Any], origin: Origin | None
) -> LaneGoal:
    now = timezone.now()
    objective = str(goal.get("objective") or "")
    created = int_or_none(goal.get("createdAt"))
    status = str(goal.get("status") or "")
    current = LaneGoal.objects.filter(lane=lane, cleared_at__isnull=True).first()
    same = (
        current is not None
        and current.objective == objective
        and (
            current.codex_created_at is None
            or created is None
            or current.codex_created_at == created
        )
    )
    if current is not None and not same:
        LaneGoal.objects.filter(pk=current.pk, cleared_at__isnull=True).update(
            cleared_at=now, cleared_by="replaced"
        )
        current = None
    if current is None:
        current = LaneGoal(lane=lane, objective=objective, created_at=now)
    if origin is not None and not current.set_by:
        current.set_by = origin_label(origin)[:200]
    current.status = status
    current.token_budget = int_or_none(goal.get("tokenBudget"))
    tokens = int_or_none(goal.get("tokensUsed"))
    seconds = int_or_none(goal.get("timeUsedSeconds"))
    # Usage only grows: an older answer arriving late must not lower it.
    current.tokens_used = max(tokens or 0, current.tokens_used or 0)
    current.time_used_seconds = max(seconds or 0, current.time_used_seconds or 0)
    current.codex_created_at = created or current.codex_created_at
    current.updated_at = now
    if status == "complete" and current.completed_at is None:
        current.completed_at = now
    current.save()
    return current


def lane_goal_mark_cleared(*, lane: Lane, origin: Origin | None = None) -> None:
    """End the lane's current goal; a clear through dispatch names who did it."""
    now = timezone.now()
    label = origin_label(origin)[:200] if origin is not None else ""
    ended = LaneGoal.objects.filter(lane=lane, cleared_at__isnull=True).update(
        cleared_at=now, cleared_by=label
    )
    if not ended and label:
        # The notification ended it a moment before our answer came back.
        latest = LaneGoal.objects.filter(lane=lane, cleared_by="").order_by("-id")
        LaneGoal.objects.filter(pk__in=latest.values("pk")[:1]).update(cleared_by=label)


def goal_history_follow(sender: Any, rows: list[EventRow], **kwargs: Any) -> None:
    """lane_events_journaled receiver: goal notifications into the history."""
    goal_rows = [
        row
        for row in rows
        if row.method in ("thread/goal/updated", "thread/goal/cleared")
    ]
    if not goal_rows:
        return
    lanes = {
        lane.thread_id: lane
        for lane in Lane.objects.filter(thread_id__in={r.thread_id for r in goal_rows})
    }
    for row in goal_rows:
        lane = lanes.get(row.thread_id)
        if lane is None:
            continue
        goal = row.params.get("goal")
        if row.method == "thread/goal/updated" and isinstance(goal, dict):
            lane_goal_observe(lane=lane, goal=goal)
        elif row.method == "thread/goal/cleared":
            lane_goal_mark_cleared(lane=lane)


def goal_history(*, lane: Lane) -> list[LaneGoal]:
    return list(LaneGoal.objects.filter(lane=lane).order_by("id"))
