"""Thread goals: read, set, clear."""

from __future__ import annotations

from typing import Any

from dispatchsite.core.errors import ValidationError
from dispatchsite.core.origin import Origin
from lanes.models import Lane
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
                lane=lane, objective=objective, status=status, token_budget=token_budget
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
    audit_record(
        op="goal-clear",
        lane=lane,
        detail="cleared" if cleared else "no goal",
        origin=origin,
    )
    return cleared
