"""Goal ops: a lane's native Codex goal (an active goal starts turns by itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, define_op
from lanes import services
from lanes.models import LaneGoal
from lanes.ops.schemas import (
    DESTROY,
    READ,
    SELECTOR,
    WRITE,
    GoalOut,
    LaneIdentityOut,
    LaneSelectorIn,
)
from lanes.presenters import goal_view, lane_identity
from lanes.selectors import resolve_lane
from lanes.services.goals import goal_history

# Goal states a user may set; usageLimited/budgetLimited are Codex's own.
GoalStatus = Literal["active", "paused", "blocked", "complete"]


class GoalViewOut(LaneIdentityOut):
    goal: GoalOut | None


class GoalClearOut(GoalViewOut):
    cleared: bool


@define_op(
    id="goal-get",
    summary="show a lane's native Codex goal",
    intent="read",
    idempotent=True,
    input=LaneSelectorIn,
    output=GoalViewOut,
    cli="goal status",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/goal"),
    mcp_tool=READ,
    mcp_action="goal_get",
)
def goal_get(data: LaneSelectorIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    goal = services.goal_fetch(lane=lane)
    return {**lane_identity(lane), "goal": goal_view(goal)}


class GoalSetIn(OpInput):
    lane: str = Field(description=SELECTOR)
    objective: str | None = Field(
        None, description="the objective (required when the lane has no goal yet)"
    )
    status: GoalStatus | None = Field(
        None, description="active|paused|blocked|complete"
    )
    token_budget: int | None = Field(
        None, ge=1, description="stop after this many tokens"
    )


@define_op(
    id="goal-set",
    summary="create or update a lane's goal (an active goal starts turns by itself)",
    intent="write",
    idempotent=False,
    input=GoalSetIn,
    output=GoalViewOut,
    cli="goal set",
    positionals=("lane", "objective"),
    http=("POST", "/lanes/{lane}/goal"),
    mcp_tool=WRITE,
    mcp_action="goal_set",
)
def goal_set(data: GoalSetIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    goal = services.lane_goal_set(
        lane=lane,
        objective=data.objective,
        status=data.status,
        token_budget=data.token_budget,
        origin=origin,
    )
    lane.refresh_from_db()
    return {**lane_identity(lane), "goal": goal_view(goal)}


@define_op(
    id="goal-clear",
    summary="clear a lane's goal",
    intent="destroy",
    idempotent=True,
    input=LaneSelectorIn,
    output=GoalClearOut,
    cli="goal clear",
    positionals=("lane",),
    http=("DELETE", "/lanes/{lane}/goal"),
    mcp_tool=DESTROY,
    mcp_action="goal_clear",
)
def goal_clear(data: LaneSelectorIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    cleared = services.lane_goal_clear(lane=lane, origin=origin)
    lane.refresh_from_db()
    return {**lane_identity(lane), "goal": None, "cleared": cleared}


class GoalHistoryRow(BaseModel):
    id: int
    objective: str
    status: str | None
    token_budget: int | None
    tokens_used: int | None
    time_used_seconds: int | None
    set_by: str | None = Field(
        description="who set it through dispatch (surface and actor); null when "
        "Codex did (the model's create_goal tool, or another client)"
    )
    cleared_by: str | None = Field(
        description='who cleared it; "replaced" when a new goal took its place'
    )
    created_at: str
    updated_at: str
    completed_at: str | None
    cleared_at: str | None
    current: bool


class GoalHistoryOut(LaneIdentityOut):
    goals: list[GoalHistoryRow]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def goal_history_row(goal: LaneGoal) -> dict[str, Any]:
    return {
        "id": goal.pk,
        "objective": goal.objective,
        "status": goal.status or None,
        "token_budget": goal.token_budget,
        "tokens_used": goal.tokens_used,
        "time_used_seconds": goal.time_used_seconds,
        "set_by": goal.set_by or None,
        "cleared_by": goal.cleared_by or None,
        "created_at": goal.created_at.isoformat(),
        "updated_at": goal.updated_at.isoformat(),
        "completed_at": iso(goal.completed_at),
        "cleared_at": iso(goal.cleared_at),
        "current": goal.cleared_at is None,
    }


@define_op(
    id="goal-history",
    summary="every goal a lane has had, oldest first (objective, status, usage, who)",
    intent="read",
    idempotent=True,
    input=LaneSelectorIn,
    output=GoalHistoryOut,
    cli="goal history",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/goal/history"),
    mcp_tool=READ,
    mcp_action="goal_history",
)
def goal_history_op(data: LaneSelectorIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    goals = goal_history(lane=lane)
    return {**lane_identity(lane), "goals": [goal_history_row(g) for g in goals]}
