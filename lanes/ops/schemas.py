"""What several lane op modules share: the lane shapes and the MCP tool groups.

Schemas used by one module only live beside its ops.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from dispatchsite.core.registry import OpInput, OpOutput
from lanes.services.validation import CWD_MAX, EFFORT_PATTERN, NAME_MAX

# MCP groups follow intent (read / write / destroy) and never mix them.
READ, WRITE, DESTROY = (
    "dispatch_thread_read",
    "dispatch_thread_write",
    "dispatch_thread_destroy",
)
DAEMON_READ = "dispatch_daemon_read"

Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
# What thread settings accept, as published: the service checks the rest
# (the directory exists; the model offers the effort) before any side effect.
CwdPath = Annotated[
    str, StringConstraints(min_length=1, max_length=CWD_MAX, pattern=r"^/")
]
LaneName = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX + 1)]
Effort = Annotated[str, StringConstraints(max_length=32, pattern=EFFORT_PATTERN)]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
CWD_HELP = "absolute path of an existing directory (the CLI resolves a relative one)"
# The CLI makes a relative path absolute against its own directory.
CLI_PATH: dict[str, Any] = {"cli_path": True}
APPROVAL_HELP = "untrusted|on-request|never"
EFFORT_HELP = (
    "reasoning effort the model offers (none|minimal|low|medium|high|xhigh "
    "for most; `dispatch models` lists them)"
)
SELECTOR = "ref, full thread id, @handle or title"


class LatestTurn(BaseModel):
    id: str
    status: str | None
    error: str | None
    error_at: str | None


class LaneRefOut(OpOutput):
    ref: str
    id: str
    handle: str
    title: str
    source: Literal["own", "attached"]
    status: str
    cwd: str
    host: str
    writable: bool
    capabilities: dict[str, bool]
    write_locked_reason: str | None


class LaneIdentityOut(LaneRefOut):
    lane: str = Field(description="the full Codex thread id (compat)")
    managed: bool = True


class GoalOut(BaseModel):
    thread_id: str | None
    objective: str | None
    status: str | None
    tokens_used: int | None
    time_used_seconds: int | None
    created_at: str | None
    updated_at: str | None
    token_budget: int | None


class LaneListItemOut(LaneRefOut):
    latest_turn: LatestTurn | None
    sync: dict[str, Any] = Field(description="LaneSyncView: what the index holds")
    active_turn_id: str | None
    model: dict[str, Any]
    goal: GoalOut | None
    created_at: str
    last_event_at: str | None


class LaneSelectorIn(OpInput):
    lane: str = Field(description="ref, full thread id, @handle or title")


class ActionAckOut(LaneIdentityOut):
    op: str
    accepted: bool = True
    detail: str
    turn_id: str | None = None
