"""Approvals inbox ops: requests held for a person (`[policy] approvals = "hold"`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes.models import Lane
from lanes.ops.schemas import READ, SELECTOR, WRITE
from lanes.selectors import resolve_lane
from lanes.services.requests import (
    held_requests,
    request_respond,
    request_view,
)


class RequestOut(BaseModel):
    id: int
    lane: str | None
    handle: str | None
    thread_id: str
    method: str
    state: str
    turn_id: str | None
    item_id: str | None
    command: Any = Field(None, description="the command to approve, if any")
    cwd: str | None
    reason: str | None
    decision: str | None
    answered_by: str | None
    received_at: str
    resolved_at: str | None


class RequestListIn(OpInput):
    lane: str | None = Field(None, description=f"only this lane ({SELECTOR})")


class RequestListOut(OpOutput):
    requests: list[RequestOut]


def lanes_by_thread(thread_ids: set[str]) -> dict[str, Lane]:
    return {
        lane.thread_id: lane for lane in Lane.objects.filter(thread_id__in=thread_ids)
    }


@define_op(
    id="request-list",
    summary="list approvals held for an answer (oldest first)",
    intent="read",
    idempotent=True,
    input=RequestListIn,
    output=RequestListOut,
    cli="request list",
    http=("GET", "/requests"),
    mcp_tool=READ,
    mcp_action="request_list",
)
def request_list(data: RequestListIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane) if data.lane else None
    rows = held_requests(lane=lane)
    lanes = lanes_by_thread({row.thread_id for row in rows})
    return {"requests": [request_view(r, lanes.get(r.thread_id)) for r in rows]}


class RequestRespondIn(OpInput):
    id: int = Field(ge=1, description="the request id from `request list`")
    decision: Literal["accept", "decline", "cancel"] = Field(
        description="accept runs it; decline refuses and the turn goes on; "
        "cancel refuses and ends the turn"
    )


class RequestRespondOut(OpOutput):
    request: RequestOut


@define_op(
    id="request-respond",
    summary="answer a held approval: accept, decline or cancel",
    intent="write",
    idempotent=False,
    input=RequestRespondIn,
    output=RequestRespondOut,
    cli="request respond",
    positionals=("id", "decision"),
    http=("POST", "/requests/{id}/respond"),
    mcp_tool=WRITE,
    mcp_action="request_respond",
)
def request_respond_op(data: RequestRespondIn, origin: Origin) -> dict[str, Any]:
    record = request_respond(pk=data.id, decision=data.decision, origin=origin)
    lane = lanes_by_thread({record.thread_id}).get(record.thread_id)
    return {"request": request_view(record, lane)}
