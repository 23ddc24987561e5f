"""Input and output schemas of the lane ops."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dispatchsite.core.registry import INTERNAL, OpInput, OpOutput

SendMode = Literal["send", "steer", "queue", "interject", "context"]
Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
# Goal states a user may set; usageLimited/budgetLimited are Codex's own.
GoalStatus = Literal["active", "paused", "blocked", "complete"]
SELECTOR = "ref, full thread id, @handle or title"
TARGET = "a lane selector (ref, thread id, @handle, title) or a raw Codex thread id"


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


class StopIn(OpInput):
    lane: str = Field(
        description="ref, full thread id, @handle or title",
        json_schema_extra={"cli_flags": ["--lane"]},
    )


class NewIn(OpInput):
    name: str = Field(description="lane name (its handle is @name)")
    cwd: str | None = Field(None, description="working directory (default: current)")
    text: str | None = Field(None, description="first message")
    goal: str | None = Field(None, description="native Codex goal objective")
    send: bool = Field(
        True, description="send the first message (--no-send to only register)"
    )
    model: str | None = None
    sandbox: Sandbox | None = None
    approval_policy: str | None = Field(
        None, description="untrusted|on-request|never ..."
    )
    effort: str | None = Field(None, description="reasoning effort (model-defined)")


class NewOut(LaneListItemOut):
    message_accepted: bool
    goal_set: bool


class SendIn(OpInput):
    lane: str = Field(description="ref, full thread id, @handle or title")
    text: str = Field(description="the message")
    mode: SendMode = Field(
        "send",
        description="send|steer|queue|interject|context",
        json_schema_extra={"cli_choice_flags": True},
    )
    intro: bool = Field(
        False, description="add a footer naming the sender lane (CODEX_THREAD_ID)"
    )
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
    include_transcript: bool = Field(
        False, description="include recent transcript items"
    )
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
    transcript_source: str | None = None


class TranscriptIn(LaneSelectorIn):
    limit: int = Field(50, ge=1, le=1000, description="most recent items")


class TranscriptOut(LaneIdentityOut):
    items: list[TranscriptItem]
    transcript_source: Literal["journal", "journal-partial", "app-server"] = Field(
        description="where the items came from (journal-partial: worker down)"
    )


class AttachIn(OpInput):
    thread: str = Field(description="the full Codex thread id to register")
    sync: bool = Field(
        False, description="also index the thread's history (bounded, like `sync`)"
    )


class AttachOut(LaneListItemOut):
    registered: bool = Field(description="false when the thread was already managed")


class DiscoverIn(OpInput):
    limit: int = Field(50, ge=1, le=500, description="at most this many threads")
    archived: bool = Field(False, description="list archived threads instead")


class DiscoveryRow(BaseModel):
    id: str
    name: str | None
    preview: str
    cwd: str | None
    status: str
    source: str
    ephemeral: bool
    model: str | None
    archived: bool
    created_at: str | None
    updated_at: str | None


class DiscoverOut(OpOutput):
    sessions: list[DiscoveryRow]


class RenameIn(OpInput):
    old: str = Field(description=TARGET)
    new: str = Field(description="the new name (the lane's handle becomes @name)")


class TargetIn(OpInput):
    target: str = Field(description=TARGET)


class ThreadActionRefOut(OpOutput):
    ref: str | None
    id: str
    handle: str | None
    managed: bool
    source: Literal["own", "attached", "unmanaged"]
    status: str
    cwd: str | None


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


class GoalViewOut(LaneIdentityOut):
    goal: GoalOut | None


class GoalClearOut(GoalViewOut):
    cleared: bool


class ModelsIn(OpInput):
    refresh: bool = Field(
        True, description="read the live catalog (--no-refresh: the cached one)"
    )
    include_hidden: bool = Field(False, description="include hidden models")


class CatalogModel(BaseModel):
    id: str
    provider: str
    display_name: str | None
    description: str | None
    is_default: bool
    hidden: bool
    default_reasoning_effort: str | None
    supported_reasoning_efforts: list[str]
    default_service_tier: str | None
    service_tiers: list[dict[str, Any]]
    input_modalities: list[str]
    supports_personality: bool
    upgrade: str | None
    aliases: dict[str, str]
    last_seen_at: str


class ModelCatalogOut(OpOutput):
    refreshed_at: str | None
    source: Literal["app-server", "registry"]
    catalog_state: Literal["ready", "empty"]
    hint: str | None
    configured_default: dict[str, Any]
    models: list[CatalogModel]


class ForkIn(OpInput):
    lane: str = Field(description=SELECTOR)
    name: str = Field(description="name of the new lane")
    cwd: str | None = Field(None, description="working directory of the fork")
    model: str | None = None
    sandbox: Sandbox | None = None
    approval_policy: str | None = Field(
        None, description="untrusted|on-request|never ..."
    )
    effort: str | None = Field(None, description="reasoning effort (model-defined)")
    last_turn_id: str | None = Field(
        None, description="fork through this turn (later turns are left out)"
    )


class ForkOut(LaneListItemOut):
    forked_from: dict[str, str]


class RollbackIn(OpInput):
    lane: str = Field(description=SELECTOR)
    turns: int = Field(1, ge=1, description="how many of the latest turns to drop")


class RollbackOut(LaneIdentityOut):
    turns: int
