"""Ops on a thread itself: its name, its archive state and its history.

rename, archive and restore take any thread, managed or not; fork, rollback
and compact reshape a lane's history.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes import services
from lanes.appserver.protocol import thread_status
from lanes.ops.replies import ack, lane_row
from lanes.ops.schemas import (
    APPROVAL_HELP,
    CLI_PATH,
    CWD_HELP,
    DESTROY,
    EFFORT_HELP,
    SELECTOR,
    WRITE,
    ActionAckOut,
    CwdPath,
    Effort,
    LaneIdentityOut,
    LaneListItemOut,
    LaneName,
    LaneSelectorIn,
    ModelId,
    Sandbox,
)
from lanes.presenters import lane_identity, thread_action_ref
from lanes.selectors import resolve_lane
from lanes.services.validation import ApprovalPolicy

TARGET = "a lane selector (ref, thread id, @handle, title) or a raw Codex thread id"


class ThreadActionRefOut(OpOutput):
    ref: str | None
    id: str
    handle: str | None
    managed: bool
    source: Literal["own", "attached", "unmanaged"]
    status: str
    cwd: str | None


# -- any thread, managed or not ------------------------------------------------


class RenameIn(OpInput):
    old: str = Field(description=TARGET)
    new: LaneName = Field(description="the new name (the lane's handle becomes @name)")


@define_op(
    id="lane-rename",
    summary="rename a lane, or name an unmanaged Codex thread",
    intent="write",
    idempotent=False,
    input=RenameIn,
    output=ThreadActionRefOut,
    cli="rename",
    positionals=("old", "new"),
    http=("POST", "/threads/{old}/rename"),
    mcp_tool=WRITE,
    mcp_action="rename",
)
def rename(data: RenameIn, origin: Origin) -> dict[str, Any]:
    lane, meta = services.thread_rename(target=data.old, new=data.new, origin=origin)
    return thread_action_ref(
        lane=lane,
        thread_id=data.old.strip(),
        status=thread_status(meta),
        cwd=meta.get("cwd"),
    )


class TargetIn(OpInput):
    target: str = Field(description=TARGET)


@define_op(
    id="archive",
    summary="archive a lane or Codex thread (history is kept)",
    intent="destroy",
    idempotent=True,
    input=TargetIn,
    output=ThreadActionRefOut,
    cli="archive",
    positionals=("target",),
    http=("POST", "/threads/{target}/archive"),
    mcp_tool=DESTROY,
    mcp_action="archive",
)
def archive(data: TargetIn, origin: Origin) -> dict[str, Any]:
    lane, meta = services.thread_archive(target=data.target, origin=origin)
    return thread_action_ref(
        lane=lane,
        thread_id=data.target.strip(),
        status="archived",
        cwd=meta.get("cwd"),
    )


@define_op(
    id="restore",
    summary="unarchive a lane or Codex thread (never starts a turn or drains a queue)",
    intent="write",
    idempotent=True,
    input=TargetIn,
    output=ThreadActionRefOut,
    cli="restore",
    positionals=("target",),
    http=("POST", "/threads/{target}/restore"),
    mcp_tool=WRITE,
    mcp_action="restore",
)
def restore(data: TargetIn, origin: Origin) -> dict[str, Any]:
    lane, thread = services.thread_restore(target=data.target, origin=origin)
    return thread_action_ref(
        lane=lane,
        thread_id=data.target.strip(),
        status=thread_status(thread) if thread else "unknown",
        cwd=thread.get("cwd"),
    )


# -- a lane's history ----------------------------------------------------------


class ForkIn(OpInput):
    lane: str = Field(description=SELECTOR)
    name: LaneName = Field(description="name of the new lane")
    cwd: CwdPath | None = Field(
        None,
        description="working directory of the fork (default: the lane's); " + CWD_HELP,
        json_schema_extra=CLI_PATH,
    )
    model: ModelId | None = None
    sandbox: Sandbox | None = None
    approval_policy: ApprovalPolicy | None = Field(None, description=APPROVAL_HELP)
    effort: Effort | None = Field(None, description=EFFORT_HELP)
    last_turn_id: str | None = Field(
        None, description="fork through this turn (later turns are left out)"
    )


class ForkOut(LaneListItemOut):
    forked_from: dict[str, str]


@define_op(
    id="fork",
    summary="fork a lane's thread into a new owned lane (thread/fork)",
    intent="write",
    idempotent=False,
    input=ForkIn,
    output=ForkOut,
    cli="lane fork",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/fork"),
    mcp_tool=WRITE,
    mcp_action="fork",
)
def fork(data: ForkIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    forked = services.lane_fork(
        lane=lane,
        name=data.name,
        cwd=data.cwd,
        model=data.model,
        sandbox=data.sandbox,
        approval_policy=data.approval_policy,
        effort=data.effort,
        last_turn_id=data.last_turn_id,
        origin=origin,
    )
    return {
        **lane_row(forked, {}),
        "forked_from": {"ref": lane.ref, "id": lane.thread_id},
    }


class RollbackIn(OpInput):
    lane: str = Field(description=SELECTOR)
    turns: int = Field(1, ge=1, description="how many of the latest turns to drop")


class RollbackOut(LaneIdentityOut):
    turns: int


@define_op(
    id="rollback",
    summary="drop a lane's latest turns from its history (files are not reverted)",
    intent="destroy",
    idempotent=False,
    input=RollbackIn,
    output=RollbackOut,
    cli="lane rollback",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/rollback"),
    mcp_tool=DESTROY,
    mcp_action="rollback",
)
def rollback(data: RollbackIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    services.lane_rollback(lane=lane, turns=data.turns, origin=origin)
    lane.refresh_from_db()
    return {**lane_identity(lane), "turns": data.turns}


@define_op(
    id="compact",
    summary="compact a lane's context (thread/compact/start)",
    intent="write",
    idempotent=False,
    input=LaneSelectorIn,
    output=ActionAckOut,
    cli="lane compact",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/compact"),
    mcp_tool=WRITE,
    mcp_action="compact",
)
def compact(data: LaneSelectorIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    return ack(lane, services.lane_compact(lane=lane, origin=origin))
