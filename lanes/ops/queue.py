"""Queue ops: look at, cancel and retry a lane's queued messages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes.models import QueuedMessage
from lanes.ops.schemas import READ, SELECTOR, WRITE
from lanes.selectors import resolve_lane
from lanes.services.queue import queued_message_cancel, queued_message_retry

LIST_MAX = 200


class QueuedMessageOut(BaseModel):
    id: int
    lane: str
    status: str
    text: str
    turn_id: str | None
    error: str | None
    created_at: str


def message_view(message: QueuedMessage) -> dict[str, Any]:
    return {
        "id": message.pk,
        "lane": message.lane.ref,
        "status": message.status,
        "text": message.text,
        "turn_id": message.turn_id or None,
        "error": message.error or None,
        "created_at": message.created_at.isoformat(),
    }


class QueueListIn(OpInput):
    lane: str = Field(description=SELECTOR)
    all: bool = Field(False, description="include sent messages")
    limit: int = Field(50, ge=1, le=LIST_MAX, description="newest first, at most")


class QueueListOut(OpOutput):
    messages: list[QueuedMessageOut]


@define_op(
    id="queue-list",
    summary="a lane's queued messages, newest first (pending, sending, failed)",
    intent="read",
    idempotent=True,
    input=QueueListIn,
    output=QueueListOut,
    cli="queue list",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/queue"),
    mcp_tool=READ,
    mcp_action="queue_list",
)
def queue_list(data: QueueListIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    # The related manager already sets each message's lane to `lane`: no join.
    rows = lane.queue.order_by("-id")
    if not data.all:
        rows = rows.exclude(status=QueuedMessage.Status.SENT)
    return {"messages": [message_view(m) for m in rows[: data.limit]]}


class MessageIdIn(OpInput):
    id: int = Field(ge=1, description="the queued message id (`dispatch queue list`)")


class QueuedMessageActionOut(OpOutput):
    message: QueuedMessageOut


@define_op(
    id="queue-cancel",
    summary="cancel a pending queued message (it is kept, marked cancelled)",
    intent="write",
    idempotent=False,
    input=MessageIdIn,
    output=QueuedMessageActionOut,
    cli="queue cancel",
    positionals=("id",),
    http=("POST", "/queue/{id}/cancel"),
    mcp_tool=WRITE,
    mcp_action="queue_cancel",
)
def queue_cancel(data: MessageIdIn, origin: Origin) -> dict[str, Any]:
    return {
        "message": message_view(
            queued_message_cancel(message_id=data.id, origin=origin)
        )
    }


@define_op(
    id="queue-retry",
    summary="put a failed or cancelled queued message back in the queue",
    intent="write",
    idempotent=False,
    input=MessageIdIn,
    output=QueuedMessageActionOut,
    cli="queue retry",
    positionals=("id",),
    http=("POST", "/queue/{id}/retry"),
    mcp_tool=WRITE,
    mcp_action="queue_retry",
)
def queue_retry(data: MessageIdIn, origin: Origin) -> dict[str, Any]:
    return {
        "message": message_view(queued_message_retry(message_id=data.id, origin=origin))
    }
