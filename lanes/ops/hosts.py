"""`lane move`: put a lane on another host (explicitly; there is no failover)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, define_op
from lanes.ops.replies import lane_row
from lanes.ops.schemas import SELECTOR, WRITE, LaneListItemOut
from lanes.selectors import resolve_lane
from lanes.services.hosts import lane_move


class MoveIn(OpInput):
    lane: str = Field(description=SELECTOR)
    host: str = Field(
        description="the host to move to; its worker must be live "
        "(`dispatch daemon status` lists hosts)",
        min_length=1,
        max_length=100,
    )


class MoveOut(LaneListItemOut):
    moved_from: str


@define_op(
    id="lane-move",
    summary="move a lane to another host (resumes its thread there from the rollout)",
    intent="write",
    idempotent=False,
    input=MoveIn,
    output=MoveOut,
    cli="lane move",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/move"),
    mcp_tool=WRITE,
    mcp_action="move",
)
def move(data: MoveIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    source = lane.host
    moved = lane_move(lane=lane, host=data.host, origin=origin)
    return {**lane_row(moved, {}), "moved_from": source}
