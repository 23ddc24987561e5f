"""Lane ops that register and read lanes: attach, list, get, tail."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from django.db.models import Q
from pydantic import BaseModel, Field

from dispatchsite.core.config import load_policy
from dispatchsite.core.errors import DispatchError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes import services
from lanes.history.discovery import threads_discover
from lanes.history.sync import lane_sync
from lanes.history.transcript import transcript_items
from lanes.models import Lane, QueuedMessage
from lanes.ops.replies import lane_row, sync_states
from lanes.ops.schemas import (
    READ,
    WRITE,
    LaneIdentityOut,
    LaneListItemOut,
    LaneSelectorIn,
)
from lanes.presenters import lane_identity
from lanes.selectors import resolve_lane
from lanes.signals import lane_detail_extras

# -- register ------------------------------------------------------------------


class AttachIn(OpInput):
    thread: str = Field(description="the full Codex thread id to register")
    sync: bool = Field(
        False, description="also index the thread's history (bounded, like `sync`)"
    )


class AttachOut(LaneListItemOut):
    registered: bool = Field(description="false when the thread was already managed")


@define_op(
    id="attach",
    summary="register an existing Codex thread as an attached (read-only) lane",
    intent="write",
    idempotent=True,
    input=AttachIn,
    output=AttachOut,
    cli="attach",
    positionals=("thread",),
    http=("POST", "/lanes/attach"),
    mcp_tool=WRITE,
    mcp_action="attach",
)
def attach(data: AttachIn, origin: Origin) -> dict[str, Any]:
    result = services.lane_attach(thread_id=data.thread, sync=data.sync, origin=origin)
    lane = result["lane"]
    if data.sync:
        try:
            # Bounded, resumable indexing of the history; attaching itself
            # already succeeded, so a failed pass is reported, not raised.
            lane_sync(lane=lane, origin=origin)
        except DispatchError:
            pass
        lane.refresh_from_db()
    return {**lane_row(lane, sync_states([lane])), "registered": result["registered"]}


# -- read ----------------------------------------------------------------------


class ListIn(OpInput):
    include_archived: bool = Field(False, description="also list archived lanes")
    page_size: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="at most this many lanes (a page); every lane when omitted",
    )
    after: str | None = Field(
        None,
        description="the next page: lanes listed after this one (the last ref "
        "of the previous page; lanes are in creation order)",
    )


class ListOut(OpOutput):
    lanes: list[LaneListItemOut]


@define_op(
    id="roster",
    summary="list managed lanes",
    intent="read",
    idempotent=True,
    input=ListIn,
    output=ListOut,
    cli="list",
    http=("GET", "/lanes"),
    mcp_tool=READ,
    mcp_action="roster",
)
def roster(data: ListIn, origin: Origin) -> dict[str, Any]:
    rows = Lane.objects.visible(include_archived=data.include_archived)
    if data.after is not None:
        # Keyset paging on the model's (created_at, id) order: stable while
        # lanes are added or change between pages.
        anchor = resolve_lane(data.after)
        rows = rows.filter(
            Q(created_at__gt=anchor.created_at)
            | Q(created_at=anchor.created_at, id__gt=anchor.id)
        )
    lanes = list(rows[: data.page_size] if data.page_size is not None else rows)
    states = sync_states(lanes)
    policy = load_policy()  # once, not once per lane
    return {"lanes": [lane_row(lane, states, policy) for lane in lanes]}


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


@define_op(
    id="discover",
    summary="list Codex threads that no lane manages (thread/list, newest first)",
    intent="read",
    idempotent=True,
    input=DiscoverIn,
    output=DiscoverOut,
    cli="list --unmanaged",
    http=("GET", "/lanes/unmanaged"),
    mcp_tool=READ,
    mcp_action="discover",
)
def discover(data: DiscoverIn, origin: Origin) -> dict[str, Any]:
    return {
        "sessions": threads_discover(
            host=settings.DISPATCH_HOST, limit=data.limit, archived=data.archived
        )
    }


class TranscriptItem(BaseModel):
    turn_id: str | None
    item_id: str | None
    type: str
    text: str


class GetIn(LaneSelectorIn):
    include_transcript: bool = Field(
        False, description="include recent transcript items"
    )
    max_items: int = Field(20, ge=1, le=500)


class GetOut(LaneListItemOut):
    lane: str
    managed: bool = True
    queue: dict[str, int]
    transcript: list[TranscriptItem] = []
    transcript_source: str | None = None


@define_op(
    id="show",
    summary="show one lane (latest turn, queue, optional transcript)",
    intent="read",
    idempotent=True,
    input=GetIn,
    output=GetOut,
    cli="get",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}"),
    mcp_tool=READ,
    mcp_action="show",
)
def show(data: GetIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    counts = {status: 0 for status in QueuedMessage.Status.values}
    # Counted in Python: no ORDER BY (the model's) nor GROUP BY to build.
    for status in lane.queue.order_by().values_list("status", flat=True):
        counts[status] += 1
    out: dict[str, Any] = {
        **lane_row(lane, sync_states([lane])),
        "lane": lane.thread_id,
        "managed": True,
        "queue": counts,
        "transcript": [],
        "transcript_source": None,
    }
    if data.include_transcript:
        out["transcript"], out["transcript_source"] = transcript_items(
            lane=lane, limit=data.max_items
        )
    out.update(lane_detail_extras(lane))
    return out


class TranscriptIn(LaneSelectorIn):
    limit: int = Field(50, ge=1, le=1000, description="most recent items")


class TranscriptOut(LaneIdentityOut):
    items: list[TranscriptItem]
    transcript_source: Literal["journal", "journal-partial", "app-server"] = Field(
        description="where the items came from (journal-partial: worker down)"
    )


@define_op(
    id="transcript",
    summary="the last items of a lane's transcript, oldest first",
    intent="read",
    idempotent=True,
    input=TranscriptIn,
    output=TranscriptOut,
    cli="tail",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/transcript"),
    mcp_tool=READ,
    mcp_action="transcript",
)
def transcript(data: TranscriptIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    items, source = transcript_items(lane=lane, limit=data.limit)
    return {**lane_identity(lane), "items": items, "transcript_source": source}
