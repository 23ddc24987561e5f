"""History ops: `sync` (Codex -> item index), `history` and `search` (index reads)."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes.history import sync as lane_sync
from lanes.history.overview import history_run
from lanes.history.search.run import search_run
from lanes.ops.schemas import READ, WRITE, LaneIdentityOut
from lanes.selectors import resolve_lane
from lanes.signals import lane_detail_extras

LANE_OR_THREAD = "a lane (ref, thread id, @handle) or a raw Codex thread id"


# -- sync ----------------------------------------------------------------------


class SyncIn(OpInput):
    lane: str = Field(description=LANE_OR_THREAD + "; a raw id is attached first")
    full: bool = Field(
        False, description="refetch every turn's items, not only new ones"
    )
    max_turns: int = Field(
        lane_sync.DEFAULT_MAX_TURNS, ge=1, le=500, description="turns to walk this run"
    )
    max_items: int = Field(
        lane_sync.DEFAULT_MAX_ITEMS,
        ge=1,
        le=5000,
        description="items to index this run",
    )
    max_bytes: int = Field(
        lane_sync.DEFAULT_MAX_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="app-server page bytes to read this run",
    )
    max_seconds: float = Field(
        lane_sync.DEFAULT_MAX_SECONDS,
        gt=0,
        le=60,
        description="time budget of this run",
    )


class LaneSyncView(BaseModel):
    state: Literal["unknown", "partial", "complete", "error"]
    last_synced_at: str | None
    latest_event_at: str | None
    latest_turn_id: str | None
    transcript_partial: bool
    error: str | None
    history_source: str
    history_complete: bool
    history_capability: str
    resumable: bool = Field(description="a cut-short pass continues on the next sync")
    pages_scanned: int
    turns_indexed: int
    items_indexed: int
    unchanged_skipped: int = Field(
        description="settled turns whose items were not refetched"
    )
    scanned_bytes: int
    duration_ms: int
    truncated: bool = Field(description="a budget ran out; sync again to continue")


class SyncOut(LaneIdentityOut):
    registered: bool = Field(description="the raw thread id was attached by this sync")
    sync: LaneSyncView


@define_op(
    id="sync",
    summary="index a lane's history from Codex (paged, bounded, resumable)",
    intent="write",
    idempotent=True,
    input=SyncIn,
    output=SyncOut,
    cli="sync",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/sync"),
    mcp_tool=WRITE,
    mcp_action="sync",
)
def sync(data: SyncIn, origin: Origin) -> dict[str, Any]:
    return lane_sync.sync_run(
        selector=data.lane,
        full=data.full,
        max_turns=data.max_turns,
        max_items=data.max_items,
        max_bytes=data.max_bytes,
        max_seconds=data.max_seconds,
        origin=origin,
    )


# -- history -------------------------------------------------------------------


class HistoryIn(OpInput):
    lane: str | None = Field(None, description="a lane; without one, the overview")
    view: Literal["auto", "overview", "summary", "items", "tools", "files"] = Field(
        "auto", description="auto = overview without a lane, summary with one"
    )
    item_type: str | None = Field(
        None,
        description="items of this Codex type (agentMessage, commandExecution, ...)",
        json_schema_extra={"cli_flags": ["--type"]},
    )
    tool: str | None = Field(None, description="items whose tool contains this")
    role: Literal["user", "assistant", "tool"] | None = None
    grep: str | None = Field(
        None, description="items whose text contains this (any case)"
    )
    raw: bool = Field(False, description="include the raw Codex item payloads")
    limit: int = Field(50, ge=1, le=1000, description="newest items to return")
    cwd: str | None = Field(None, description="overview: lanes whose cwd contains this")
    source: Literal["own", "attached"] | None = Field(
        None, description="overview filter"
    )
    status: str | None = Field(None, description="overview: lanes with this status")
    has_tool: str | None = Field(
        None, description="overview: lanes that used such a tool"
    )
    worktree: Literal["any", "changed", "clean"] = Field(
        "any",
        description="overview: lanes whose git worktree is dirty / clean",
        json_schema_extra={"cli_choice_flags": True},
    )
    min_bytes: int | None = Field(
        None, ge=0, description="overview: lanes with at least this transcript size"
    )


class FileCount(BaseModel):
    path: str
    count: int


class IndexView(BaseModel):
    state: str
    history_complete: bool
    last_synced_at: str | None


class HistoryThreadSummary(BaseModel):
    ref: str
    id: str
    handle: str
    source: str
    status: str
    cwd: str
    first_event_at: str | None
    last_event_at: str | None
    turns: int
    items: int
    messages: int
    tool_calls: int
    unique_tools: list[str]
    files_changed_count: int
    files_changed: list[FileCount]
    transcript_bytes: int
    estimated_tokens: int
    subagents_count: int
    subagent_thread_ids: list[str]
    worktree: dict[str, Any] | None
    index: IndexView


class HistoryItem(BaseModel):
    turn_id: str | None
    item_id: str
    type: str
    text: str
    role: str | None
    tool: str | None
    status: str | None
    files: list[str]
    bytes: int
    source: str
    created_at: str
    completed_at: str | None
    raw: Any = None


class HistoryToolStat(BaseModel):
    tool: str
    count: int
    item_types: list[str]


class HistoryFile(FileCount):
    changed: int
    referenced: int


class HistoryOut(OpOutput):
    mode: Literal["overview", "summary", "items", "tools", "files"]
    threads: list[HistoryThreadSummary]
    thread: HistoryThreadSummary | None
    items: list[HistoryItem]
    tools: list[HistoryToolStat]
    files: list[HistoryFile]


@define_op(
    id="history",
    summary="lane history from the local index: overview, summary, items, tools, files",
    intent="read",
    idempotent=True,
    input=HistoryIn,
    output=HistoryOut,
    cli="history",
    positionals=("lane",),
    http=("GET", "/history"),
    mcp_tool=READ,
    mcp_action="history",
)
def history(data: HistoryIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane) if data.lane else None
    out = history_run(
        lane=lane,
        view=data.view,
        item_type=data.item_type,
        tool=data.tool,
        role=data.role,
        grep=data.grep,
        raw=data.raw,
        limit=data.limit,
        cwd=data.cwd,
        source=data.source,
        status=data.status,
        has_tool=data.has_tool,
        worktree=data.worktree,
        min_bytes=data.min_bytes,
    )
    if lane is not None:
        out.update(lane_detail_extras(lane))
    return out


# -- search --------------------------------------------------------------------


class SearchIn(OpInput):
    query: str = Field(
        description='words to find (all must match); "a phrase", prefix*, -exclude'
    )
    lane: str | None = Field(
        None,
        description="only this lane or thread",
        json_schema_extra={"cli_flags": ["--thread"]},
    )
    repo: str | None = Field(
        None, description="lanes whose cwd is in this path's git repo"
    )
    directory: str | None = Field(
        None,
        description="lanes whose cwd is under this directory",
        json_schema_extra={"cli_flags": ["--dir"]},
    )
    since: str | None = Field(
        None, description="items from this date (YYYY-MM-DD or ISO)"
    )
    until: str | None = Field(
        None, description="items up to this date (a day is inclusive)"
    )
    scope: Literal["all", "managed", "unmanaged"] = Field(
        "all",
        description="managed: lanes only; unmanaged: other threads, also via "
        "the app-server's experimental thread/search",
        json_schema_extra={"cli_choice_flags": True},
    )
    limit: int = Field(20, ge=1, le=200, description="matches to return")
    max_scan: int = Field(200, ge=1, le=2000, description="unmanaged: threads to scan")
    cursor: str | None = Field(None, description="next_cursor of a previous search")


class SearchMatch(BaseModel):
    ref: str | None
    id: str
    handle: str | None
    managed: bool
    source: str
    status: str
    name: str | None
    cwd: str | None
    origin: Literal["index", "app-server"]
    item_id: str | None
    turn_id: str | None
    type: str | None
    role: str | None
    tool: str | None
    preview: str
    snippet: str
    score: float | None = Field(
        description="higher ranks first (bm25); null from Codex"
    )
    created_at: str | None
    updated_at: str | None


class SearchOut(OpOutput):
    query: str
    matches: list[SearchMatch]
    scanned: int = Field(
        description="index matches ranked (the newest 5,000 at most) plus threads "
        "Codex's thread/search scanned"
    )
    next_cursor: str | None
    experimental: bool = Field(
        description="the app-server's experimental search was asked"
    )


@define_op(
    id="search",
    summary="full-text search over every indexed item of every lane (ranked, snippets)",
    intent="read",
    idempotent=True,
    input=SearchIn,
    output=SearchOut,
    cli="search",
    positionals=("query",),
    http=("GET", "/search"),
    mcp_tool=READ,
    mcp_action="search",
)
def search(data: SearchIn, origin: Origin) -> dict[str, Any]:
    return search_run(
        query=data.query,
        lane=data.lane,
        directory=data.directory,
        repo=data.repo,
        since=data.since,
        until=data.until,
        scope=data.scope,
        limit=data.limit,
        max_scan=data.max_scan,
        cursor=data.cursor,
        host=settings.DISPATCH_HOST,
    )
