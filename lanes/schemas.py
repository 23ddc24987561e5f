"""Input and output schemas of the lane ops."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dispatchsite.ops import INTERNAL, OpInput, OpOutput

SendMode = Literal["send", "steer", "queue", "interject", "context"]
Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]


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


class LaneListItemOut(LaneRefOut):
    latest_turn: LatestTurn | None
    active_turn_id: str | None
    model: dict[str, Any]
    goal: dict[str, Any] | None
    created_at: str
    last_event_at: str | None


class LaneSelectorIn(OpInput):
    lane: str = Field(description="ref, full thread id, @handle or title")


class NewIn(OpInput):
    name: str = Field(description="lane name (its handle is @name)")
    cwd: str | None = Field(None, description="working directory (default: current)")
    text: str | None = Field(None, description="first message")
    goal: str | None = Field(None, description="native Codex goal objective")
    send: bool = Field(True, description="send the first message (--no-send to only register)")
    model: str | None = None
    sandbox: Sandbox | None = None
    approval_policy: str | None = Field(None, description="untrusted|on-request|never ...")
    effort: str | None = Field(None, description="reasoning effort (model-defined)")


class NewOut(LaneListItemOut):
    message_accepted: bool
    goal_set: bool


class SendIn(OpInput):
    lane: str = Field(description="ref, full thread id, @handle or title")
    text: str = Field(description="the message")
    mode: SendMode = Field(
        "send", description="send|steer|queue|interject|context",
        json_schema_extra={"cli_choice_flags": True},
    )
    intro: bool = Field(False, description="add a footer naming the sender lane (CODEX_THREAD_ID)")
    caller_thread_id: str | None = Field(None, json_schema_extra=INTERNAL)


class ActionAckOut(LaneIdentityOut):
    op: str
    accepted: bool = True
    detail: str
    turn_id: str | None = None


class ListIn(OpInput):
    include_archived: bool = Field(False, description="also list archived lanes")


class ListOut(OpOutput):
    lanes: list[LaneListItemOut]


class GetIn(LaneSelectorIn):
    include_transcript: bool = Field(False, description="include recent transcript items")
    max_items: int = Field(20, ge=1, le=500)


class TranscriptItem(BaseModel):
    turn_id: str | None
    item_id: str | None
    type: str
    text: str


class GetOut(LaneListItemOut):
    lane: str
    managed: bool = True
    queue: dict[str, int]
    transcript: list[TranscriptItem] = []
