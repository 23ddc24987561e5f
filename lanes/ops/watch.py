"""The bounded `watch` op: a sample of a lane's raw events, from the journal.

Streaming (`watch --follow`, the live page) goes over the websocket; this op
works on every surface (CLI, REST, MCP) without one, by polling the DB.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import define_op
from lanes.journal.reader import WATCH_LIMIT_MAX, WATCH_TIMEOUT_MAX, lane_watch
from lanes.ops.schemas import READ, LaneIdentityOut, LaneSelectorIn
from lanes.selectors import resolve_lane


class WatchIn(LaneSelectorIn):
    limit: int = Field(
        20, ge=1, le=WATCH_LIMIT_MAX, description="at most this many events"
    )
    timeout: float = Field(
        10,
        ge=0,
        le=WATCH_TIMEOUT_MAX,
        description="seconds to wait (0 returns at once, timed_out true)",
    )
    after: int | None = Field(
        None,
        ge=0,
        description="page the journal: events after this seq, returned at once "
        "(default: only events arriving during the call)",
    )


class WatchEvent(BaseModel):
    seq: int
    method: str
    params: dict[str, Any]
    request_id: Any = None


class WatchOut(LaneIdentityOut):
    events: list[WatchEvent]
    timed_out: bool
    last_seq: int = Field(description="pass as --after to continue from here")


@define_op(
    id="watch",
    summary="sample a lane's raw events (or page its journal with --after)",
    intent="read",
    idempotent=True,
    input=WatchIn,
    output=WatchOut,
    cli="watch",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/watch"),
    mcp_tool=READ,
    mcp_action="watch",
)
def watch(data: WatchIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    return lane_watch(
        lane=lane, limit=data.limit, timeout=data.timeout, after=data.after
    )
